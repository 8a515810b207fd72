//! scripts/check_api_docs.py, the documentation check of the public headers: it passes on
//! include/mqttclient.h and include/mqttclient.hpp, and it fails on small headers written here
//! that break each of its rules (the same header with the rule kept passes, so each failure is the
//! rule's doing).
mod common;

use std::process::Command;

/// Runs the checker on `headers` (file name and content), written to a fresh directory; returns
/// whether it passed and what it printed.
fn check(tag: &str, headers: &[(&str, &str)]) -> (bool, String) {
    let dir = common::temp_dir(tag);
    run(&common::write_files(&dir, headers))
}

fn run(paths: &[std::path::PathBuf]) -> (bool, String) {
    let out = Command::new("python3")
        .arg(common::project_dir().join("scripts/check_api_docs.py"))
        .args(paths)
        .output()
        .expect("run python3");
    let text = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    // Exit 1 is a failed check; anything else (a Python error) is a broken checker.
    assert!(
        matches!(out.status.code(), Some(0 | 1)),
        "check_api_docs.py: {}\n{text}",
        out.status
    );
    (out.status.success(), text)
}

/// Checks that the checker fails on `header` (a C header, or C++ when its name ends in .hpp) and
/// says `problem`.
fn fails_with(tag: &str, name: &str, header: &str, problem: &str) {
    let (ok, out) = check(tag, &[(name, header)]);
    assert!(!ok, "passed, but should have reported: {problem}\n{out}");
    assert!(out.contains(problem), "not reported: {problem}\nreported:\n{out}");
}

/// A C header in the form cbindgen writes, with `$DOC` standing for the comment of `mqttc_frob`.
const C_HEADER: &str = r#"
/**
 * Results.
 */
typedef enum mqttc_status {
  MQTTC_OK = 0,
  MQTTC_PENDING = 1,
  MQTTC_ERR_NULL = -1,
  MQTTC_ERR_INVALID_HANDLE = -8,
} mqttc_status;

/**
 * A thing.
 */
typedef struct mqttc_thing mqttc_thing;

#ifdef __cplusplus
extern "C" {
#endif

/**
 * Makes a thing.
 *
 * Errors: MQTTC_ERR_NULL (`out` is NULL).
 */
enum mqttc_status mqttc_thing_new(struct mqttc_thing **out);

$DOC
enum mqttc_status mqttc_frob(struct mqttc_thing *thing,
                             int how);

/**
 * Releases a thing; returns nothing, so needs no Errors paragraph.
 */
void mqttc_thing_free(struct mqttc_thing *thing);

#ifdef __cplusplus
}
#endif
"#;

const GOOD_DOC: &str = "/**\n * Frobs.\n *\n * Errors: MQTTC_ERR_NULL, MQTTC_ERR_INVALID_HANDLE (freed).\n */";

fn c_header(doc: &str) -> String {
    C_HEADER.replace("$DOC", doc)
}

#[test]
fn the_public_headers_are_documented() {
    let include = common::project_dir().join("include");
    let (ok, out) = run(&[include.join("mqttclient.h"), include.join("mqttclient.hpp")]);
    assert!(ok, "{out}");
    assert!(
        out.contains("mqttclient.h: ") && out.contains("mqttclient.hpp: "),
        "{out}"
    );
}

/// The comment of `mqttc_frob` with `errors` as its Errors paragraph.
fn frob_doc(errors: &str) -> String {
    format!("/**\n * Frobs.\n *\n * Errors: {errors}\n */")
}

#[test]
fn a_header_that_keeps_every_rule_passes() {
    let (ok, out) = check("docs-good", &[("good.h", &c_header(GOOD_DOC))]);
    assert!(ok, "{out}");
    assert!(out.contains("good.h: 3 functions, 2 types: all documented"), "{out}");
}

#[test]
fn an_undocumented_function_fails() {
    fails_with(
        "docs-fn",
        "a.h",
        &c_header(""),
        "mqttc_frob: the function has no doc comment",
    );
}

#[test]
fn an_undocumented_type_fails() {
    let header = c_header(GOOD_DOC).replace("/**\n * A thing.\n */\n", "");
    fails_with(
        "docs-type",
        "a.h",
        &header,
        "mqttc_thing: the typedef has no doc comment",
    );
}

#[test]
fn a_status_function_without_an_errors_paragraph_fails() {
    let problem = "mqttc_frob: returns a status, but its doc comment does not end with an Errors paragraph";
    fails_with("docs-no-errors", "a.h", &c_header("/**\n * Frobs.\n */"), problem);
    // A plain int carries a status too.
    let free = "void mqttc_thing_free(struct mqttc_thing *thing);";
    let state =
        "/**\n * The state, or a negative status.\n */\nint mqttc_thing_state(const struct mqttc_thing *thing);";
    let header = c_header(GOOD_DOC).replace(free, &format!("{free}\n\n{state}"));
    fails_with("docs-int", "a.h", &header, "mqttc_thing_state: returns a status");
}

#[test]
fn an_errors_paragraph_that_is_not_last_fails() {
    let doc = frob_doc("MQTTC_ERR_NULL.\n *\n * More text.");
    fails_with(
        "docs-not-last",
        "a.h",
        &c_header(&doc),
        "mqttc_frob: the Errors paragraph is not the last one",
    );
}

#[test]
fn an_unknown_or_misplaced_error_name_fails() {
    let unknown = "which is not a value of enum mqttc_status";
    for (tag, errors, problem) in [
        // A typo, and a name in the "when" text: both must be values of the enum.
        ("docs-typo", "MQTTC_ERR_NUL, MQTTC_ERR_INVALID_HANDLE.", unknown),
        ("docs-when", "MQTTC_ERR_NULL (as MQTTC_ERR_NO_SUCH_THING).", unknown),
        ("docs-empty", "see above.", "names no status"),
        ("docs-ok", "MQTTC_OK, MQTTC_ERR_NULL.", "lists MQTTC_OK"),
        (
            "docs-twice",
            "MQTTC_ERR_NULL, MQTTC_ERR_NULL (again).",
            "lists MQTTC_ERR_NULL twice",
        ),
    ] {
        fails_with(tag, "a.h", &c_header(&frob_doc(errors)), problem);
    }
}

/// A C++ header with an undocumented class and namespace function, each documented in `GOOD_CPP`.
const CPP_HEADER: &str = r#"
namespace mqttc {
namespace detail {
struct helper {};
inline void internal() {}
} // namespace detail

class Thing {
public:
    Thing() noexcept = default;
    void frob() const noexcept {}

private:
    struct impl {};
};

inline int frob_all() noexcept { return 0; }
} // namespace mqttc
"#;

#[test]
fn an_undocumented_cpp_class_or_function_fails() {
    fails_with(
        "docs-cpp-class",
        "a.hpp",
        CPP_HEADER,
        "Thing: the class has no doc comment",
    );
    fails_with(
        "docs-cpp-fn",
        "a.hpp",
        CPP_HEADER,
        "frob_all: the function has no doc comment",
    );
    // Implementation details and private members are not the API.
    let (_, out) = check("docs-cpp", &[("a.hpp", CPP_HEADER)]);
    for private in ["helper", "internal", "impl"] {
        assert!(!out.contains(&format!(" {private}:")), "{private}: {out}");
    }
    let good = CPP_HEADER
        .replace("class Thing {", "/// A thing.\nclass Thing {")
        .replace("inline int frob_all", "/// Frobs them all.\ninline int frob_all");
    let (ok, out) = check("docs-cpp-good", &[("a.hpp", &good)]);
    assert!(ok, "{out}");
}
