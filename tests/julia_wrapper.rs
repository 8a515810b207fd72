//! The Julia package (julia/MQTTClient) cannot be run here: there is no Julia runtime on the build
//! machines. What can be checked without one is checked: every `.jl` file parses with a real Julia
//! grammar (tree-sitter-julia), every `ccall` and every Julia mirror of a C struct matches
//! include/mqttclient.h, and the same sequence of C calls, made from Python with ctypes
//! (tests/python/julia_mirror.py), runs against a real mosquitto.
mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::{Broker, lib_dir, project_dir, run_program};

/// The C structs the Julia package mirrors field by field.
const MIRRORED_STRUCTS: [&str; 6] = [
    "mqttc_options",
    "mqttc_event",
    "mqttc_message",
    "mqttc_connection_event",
    "mqttc_subscription",
    "mqttc_property",
];

// ------------------------------------------------------------------------------------------------
// The header

/// A C type reduced to what a binding must match: the base type once qualifiers and typedefs are
/// gone (enums become `int`, function pointers `void *`), and the pointer depth.
struct CType {
    base: String,
    depth: usize,
}

impl std::fmt::Display for CType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}{}", self.base, "*".repeat(self.depth))
    }
}

#[derive(Default)]
struct Header {
    /// name => (result, parameters)
    functions: BTreeMap<String, (CType, Vec<CType>)>,
    /// name => fields in order
    structs: BTreeMap<String, Vec<(String, CType)>>,
    /// Structs declared without a body (the client handle).
    opaque: BTreeSet<String>,
}

/// Blanks `/* */` and `//` comments, keeping line breaks.
fn strip_c_comments(text: &str) -> String {
    let c: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < c.len() {
        if c[i] == '/' && c.get(i + 1) == Some(&'*') {
            let mut j = i + 2;
            while j + 1 < c.len() && !(c[j] == '*' && c[j + 1] == '/') {
                j += 1;
            }
            let end = (j + 2).min(c.len());
            out.extend(c[i..end].iter().map(|&ch| if ch == '\n' { '\n' } else { ' ' }));
            i = end;
        } else if c[i] == '/' && c.get(i + 1) == Some(&'/') {
            while i < c.len() && c[i] != '\n' {
                i += 1;
            }
        } else {
            out.push(c[i]);
            i += 1;
        }
    }
    out
}

/// The header's top-level declarations (split at `;` outside braces), whitespace collapsed, without
/// preprocessor lines and without the `extern "C"` wrapper that only C++ sees.
fn c_statements(header: &str) -> Vec<String> {
    let mut kept = String::new();
    let mut in_cplusplus = false;
    for line in strip_c_comments(header).lines() {
        let t = line.trim();
        if t.starts_with("#ifdef __cplusplus") {
            in_cplusplus = true;
        } else if in_cplusplus {
            in_cplusplus = !t.starts_with("#endif");
        } else if !t.starts_with('#') {
            kept.push_str(line);
            kept.push('\n');
        }
    }
    let mut statements = Vec::new();
    let mut depth = 0usize;
    let mut current = String::new();
    for ch in kept.chars() {
        match ch {
            '{' => depth += 1,
            '}' => depth = depth.saturating_sub(1),
            _ => {}
        }
        if ch == ';' && depth == 0 {
            statements.push(current.split_whitespace().collect::<Vec<_>>().join(" "));
            current.clear();
        } else {
            current.push(ch);
        }
    }
    statements
}

/// Splits a declarator such as `const char *const *uris` into its type text and its name.
fn split_declaration(decl: &str) -> (String, String) {
    let decl = decl.trim();
    let name_start = decl
        .rfind(|ch: char| !(ch.is_ascii_alphanumeric() || ch == '_'))
        .map_or(0, |i| i + 1);
    (decl[..name_start].trim().to_string(), decl[name_start..].to_string())
}

/// What the header's typedefs say about a name: used while reducing types.
#[derive(Default)]
struct Typedefs {
    enums: BTreeSet<String>,
    function_pointers: BTreeSet<String>,
    aliases: BTreeMap<String, String>,
}

impl Typedefs {
    fn reduce(&self, type_text: &str) -> CType {
        let spaced = type_text.replace('*', " * ");
        let mut depth = 0;
        let mut words = Vec::new();
        for w in spaced.split_whitespace() {
            match w {
                "*" => depth += 1,
                "const" | "struct" | "enum" => {}
                _ => words.push(w),
            }
        }
        let mut base = words.join(" ");
        loop {
            if self.enums.contains(&base) {
                base = "int".to_string();
            } else if self.function_pointers.contains(&base) {
                base = "void".to_string();
                depth += 1;
            } else if let Some(target) = self.aliases.get(&base) {
                let inner = self.reduce(target);
                base = inner.base;
                depth += inner.depth;
                continue;
            }
            return CType { base, depth };
        }
    }
}

fn parse_header(text: &str) -> Header {
    let statements = c_statements(text);
    let mut typedefs = Typedefs::default();
    let mut raw_structs = Vec::new();
    let mut raw_functions = Vec::new();
    let mut header = Header::default();
    for s in &statements {
        if let Some(rest) = s.strip_prefix("typedef ") {
            if let Some(open) = rest.find("(*") {
                let name = &rest[open + 2..open + 2 + rest[open + 2..].find(')').unwrap()];
                typedefs.function_pointers.insert(name.trim().to_string());
            } else if rest.starts_with("enum ") {
                let (_, name) = split_declaration(rest);
                typedefs.enums.insert(name);
            } else if rest.starts_with("struct ") && rest.contains('{') {
                let body = &rest[rest.find('{').unwrap() + 1..rest.rfind('}').unwrap()];
                let name = rest[rest.rfind('}').unwrap() + 1..].trim().to_string();
                raw_structs.push((name, body.to_string()));
            } else {
                let (target, name) = split_declaration(rest);
                if target == format!("struct {name}") {
                    header.opaque.insert(name);
                } else {
                    typedefs.aliases.insert(name, target);
                }
            }
        } else if let (Some(open), Some(close)) = (s.find('('), s.rfind(')')) {
            let (result, name) = split_declaration(&s[..open]);
            let params = s[open + 1..close].trim().to_string();
            raw_functions.push((name, result, params));
        }
    }
    for (name, body) in raw_structs {
        let fields = body
            .split(';')
            .filter(|f| !f.trim().is_empty())
            .map(|f| {
                let (t, field) = split_declaration(f);
                (field, typedefs.reduce(&t))
            })
            .collect();
        header.structs.insert(name, fields);
    }
    for (name, result, params) in raw_functions {
        let params = if params == "void" {
            Vec::new()
        } else {
            params
                .split(',')
                .map(|p| typedefs.reduce(&split_declaration(p).0))
                .collect()
        };
        header.functions.insert(name, (typedefs.reduce(&result), params));
    }
    header
}

fn project_header() -> Header {
    parse_header(&std::fs::read_to_string(project_dir().join("include/mqttclient.h")).unwrap())
}

// ------------------------------------------------------------------------------------------------
// Julia sources

/// Index just past the string literal whose opening quote(s) end right before `i`. Interpolations
/// `$(...)` are skipped as code, so quotes inside them do not end the string.
fn skip_julia_string(c: &[char], mut i: usize, triple: bool) -> usize {
    while i < c.len() {
        if c[i] == '\\' {
            i += 2;
        } else if c[i] == '$' && c.get(i + 1) == Some(&'(') {
            i = skip_interpolation(c, i + 2);
        } else if c[i] == '"' && (!triple || c[i..].starts_with(&['"', '"', '"'])) {
            return i + if triple { 3 } else { 1 };
        } else {
            i += 1;
        }
    }
    i
}

/// Where the comment, string or character literal starting at `i` ends, if one starts there.
fn julia_literal_end(c: &[char], i: usize) -> Option<usize> {
    if c[i..].starts_with(&['#', '=']) {
        let mut depth = 0;
        let mut j = i;
        while j < c.len() {
            if c[j..].starts_with(&['#', '=']) {
                depth += 1;
                j += 2;
            } else if c[j..].starts_with(&['=', '#']) {
                depth -= 1;
                j += 2;
                if depth == 0 {
                    return Some(j);
                }
            } else {
                j += 1;
            }
        }
        return Some(j);
    }
    match c[i] {
        '#' => Some(c[i..].iter().position(|&ch| ch == '\n').map_or(c.len(), |n| i + n)),
        '"' if c[i..].starts_with(&['"', '"', '"']) => Some(skip_julia_string(c, i + 3, true)),
        '"' => Some(skip_julia_string(c, i + 1, false)),
        // A quote right after a value is the adjoint operator, otherwise a character literal.
        '\'' if i == 0 || !(c[i - 1].is_alphanumeric() || ")]}_'.".contains(c[i - 1])) => {
            let mut j = i + 1;
            while j < c.len() && c[j] != '\'' {
                j += if c[j] == '\\' { 2 } else { 1 };
            }
            Some((j + 1).min(c.len()))
        }
        _ => None,
    }
}

/// Skips the code of an interpolation `$(...)` from just after its `(` to just past its `)`.
fn skip_interpolation(c: &[char], mut i: usize) -> usize {
    let mut depth = 1;
    while i < c.len() {
        if let Some(end) = julia_literal_end(c, i) {
            i = end;
            continue;
        }
        match c[i] {
            '(' => depth += 1,
            ')' => {
                depth -= 1;
                if depth == 0 {
                    return i + 1;
                }
            }
            _ => {}
        }
        i += 1;
    }
    i
}

/// The source with comments, strings and character literals blanked (line breaks kept, so byte
/// offsets still give line numbers), leaving only code to search.
fn julia_code(src: &str) -> String {
    let c: Vec<char> = src.chars().collect();
    let mut out = c.clone();
    let mut i = 0;
    while i < c.len() {
        match julia_literal_end(&c, i) {
            Some(end) => {
                for ch in &mut out[i..end] {
                    if *ch != '\n' {
                        *ch = ' ';
                    }
                }
                i = end;
            }
            None => i += 1,
        }
    }
    out.into_iter().collect()
}

/// Splits the arguments of a call whose `(` is just before `start`, at top-level commas; returns
/// them (trimmed) and the index just past the closing `)`.
fn split_arguments(code: &[char], start: usize) -> (Vec<String>, usize) {
    let mut args = Vec::new();
    let mut depth = 0usize;
    let mut current = String::new();
    let mut i = start;
    while i < code.len() {
        let ch = code[i];
        match ch {
            '(' | '[' | '{' => depth += 1,
            ')' | ']' | '}' if depth > 0 => depth -= 1,
            ')' => {
                if !current.trim().is_empty() {
                    args.push(current.trim().to_string());
                }
                return (args, i + 1);
            }
            ',' if depth == 0 => {
                args.push(current.trim().to_string());
                current.clear();
                i += 1;
                continue;
            }
            _ => {}
        }
        current.push(ch);
        i += 1;
    }
    (args, i)
}

/// A Julia type reduced like a `CType`: `Ptr{T}` and `Ref{T}` add a pointer level; `Cstring` is a
/// pointer to bytes.
fn julia_type(t: &str) -> (String, usize) {
    let t = t.trim();
    for wrapper in ["Ptr{", "Ref{"] {
        if let Some(inner) = t.strip_prefix(wrapper).and_then(|r| r.strip_suffix('}')) {
            let (base, depth) = julia_type(inner);
            return (base, depth + 1);
        }
    }
    if t == "Cstring" {
        return ("UInt8".to_string(), 1);
    }
    (t.to_string(), 0)
}

/// Whether a Julia type has the C type's layout (the C-type to Julia-type table).
fn compatible(c: &CType, julia: &str, header: &Header) -> bool {
    let (j, depth) = julia_type(julia);
    if depth != c.depth {
        return false;
    }
    match c.base.as_str() {
        "char" => matches!(j.as_str(), "Cchar" | "UInt8" | "Int8"),
        "uint8_t" => j == "UInt8",
        "uint16_t" => j == "UInt16",
        "uint32_t" => matches!(j.as_str(), "UInt32" | "Cuint"),
        "uint64_t" => j == "UInt64",
        "int" | "int32_t" => matches!(j.as_str(), "Cint" | "Int32"),
        "size_t" => j == "Csize_t",
        "bool" => j == "Bool",
        // Untyped bytes (`const void *payload`) may be seen as bytes.
        "void" => j == "Cvoid" || (depth > 0 && j == "UInt8"),
        other if header.opaque.contains(other) => j == "Cvoid",
        other => header.structs.contains_key(other) && j == other,
    }
}

struct JuliaCall {
    at: String,
    name: String,
    result: String,
    types: Vec<String>,
    arguments: usize,
}

fn line_of(code: &[char], offset: usize) -> usize {
    code[..offset].iter().filter(|&&ch| ch == '\n').count() + 1
}

/// Every `ccall` of one Julia file; a call not made through `sym(:mqttc_...)` is a problem.
fn julia_calls(file: &str, src: &str, problems: &mut Vec<String>) -> Vec<JuliaCall> {
    const CCALL: [char; 5] = ['c', 'c', 'a', 'l', 'l'];
    let code: Vec<char> = julia_code(src).chars().collect();
    let mut calls = Vec::new();
    for offset in 0..code.len() {
        if !code[offset..].starts_with(&CCALL)
            || (offset > 0 && (code[offset - 1].is_alphanumeric() || code[offset - 1] == '_'))
        {
            continue;
        }
        let at = format!("{file}:{}", line_of(&code, offset));
        if offset > 0 && code[offset - 1] == '@' {
            problems.push(format!(
                "{at}: @ccall; this package calls C only as ccall(sym(:name), ...)"
            ));
            continue;
        }
        if code.get(offset + 5) != Some(&'(') {
            continue;
        }
        let (args, _) = split_arguments(&code, offset + 6);
        let name = args
            .first()
            .and_then(|a| a.strip_prefix("sym(:"))
            .and_then(|a| a.strip_suffix(')'))
            .filter(|n| n.starts_with("mqttc_"));
        let (Some(name), Some(types)) = (name, args.get(2)) else {
            problems.push(format!(
                "{at}: ccall not of the form ccall(sym(:mqttc_name), Result, (Types...), args...): {args:?}"
            ));
            continue;
        };
        let Some(types) = types.strip_prefix('(').and_then(|t| t.strip_suffix(')')) else {
            problems.push(format!("{at}: {name}: argument types are not a tuple: {types}"));
            continue;
        };
        let types_chars: Vec<char> = format!("{types})").chars().collect();
        let (types, _) = split_arguments(&types_chars, 0);
        calls.push(JuliaCall {
            at,
            name: name.to_string(),
            result: args[1].clone(),
            types: types.into_iter().filter(|t| !t.is_empty()).collect(),
            arguments: args.len() - 3,
        });
    }
    calls
}

/// The fields (name, type) of `struct name` in Julia code, or None when there is no such struct.
fn julia_struct(file: &str, code: &str, name: &str, problems: &mut Vec<String>) -> Option<Vec<(String, String)>> {
    let mut lines = code.lines().enumerate();
    lines.find(|(_, l)| {
        let t = l.trim();
        t == format!("struct {name}") || t == format!("mutable struct {name}")
    })?;
    let mut fields = Vec::new();
    for (n, line) in lines {
        let t = line.trim();
        if t == "end" {
            return Some(fields);
        }
        if t.is_empty() {
            continue;
        }
        match t.split_once("::") {
            Some((field, ty)) => fields.push((field.trim().to_string(), ty.trim().to_string())),
            None => problems.push(format!("{file}:{}: struct {name}: not a field: {t}", n + 1)),
        }
    }
    problems.push(format!("{file}: struct {name} has no `end`"));
    None
}

/// The names listed in `const C_FUNCTIONS = (...)`, which `__init__` resolves for `sym`.
fn julia_declared_functions(code: &str) -> Option<BTreeSet<String>> {
    let start = code.find("const C_FUNCTIONS = (")?;
    let list = &code[start..start + code[start..].find(')')?];
    Some(
        list.split(|ch: char| !(ch.is_ascii_alphanumeric() || ch == '_' || ch == ':'))
            .filter_map(|w| w.strip_prefix(":mqttc_"))
            .map(|n| format!("mqttc_{n}"))
            .collect(),
    )
}

/// Checks Julia sources (file name, text) against the header: every ccall names a declared
/// function with its arity and compatible types, passes as many arguments as it declares types,
/// `C_FUNCTIONS` lists exactly the functions called, and the mirrors of the header's structs match
/// field by field. Returns the problems and the names of the functions called.
fn check_julia(sources: &[(String, String)], header: &Header) -> (Vec<String>, BTreeSet<String>) {
    let mut problems = Vec::new();
    let mut called = BTreeSet::new();
    let mut declared: Option<BTreeSet<String>> = None;
    let mut structs = BTreeMap::new();
    for (file, src) in sources {
        let code = julia_code(src);
        for call in julia_calls(file, src, &mut problems) {
            called.insert(call.name.clone());
            let Some((result, params)) = header.functions.get(&call.name) else {
                problems.push(format!("{}: {} is not declared in mqttclient.h", call.at, call.name));
                continue;
            };
            if call.types.len() != params.len() {
                problems.push(format!(
                    "{}: {} takes {} parameter(s) in mqttclient.h, the ccall declares {}",
                    call.at,
                    call.name,
                    params.len(),
                    call.types.len()
                ));
            } else {
                for (i, (c, j)) in params.iter().zip(&call.types).enumerate() {
                    if !compatible(c, j, header) {
                        problems.push(format!(
                            "{}: {} parameter {}: C type {c} but Julia type {j}",
                            call.at,
                            call.name,
                            i + 1
                        ));
                    }
                }
            }
            if call.arguments != call.types.len() {
                problems.push(format!(
                    "{}: {} declares {} argument type(s) but passes {} argument(s)",
                    call.at,
                    call.name,
                    call.types.len(),
                    call.arguments
                ));
            }
            if !compatible(result, &call.result, header) {
                problems.push(format!(
                    "{}: {} returns {result} but the ccall says {}",
                    call.at, call.name, call.result
                ));
            }
        }
        if let Some(list) = julia_declared_functions(&code) {
            declared = Some(list);
        }
        for name in MIRRORED_STRUCTS {
            if let Some(fields) = julia_struct(file, &code, name, &mut problems) {
                structs.insert(name, (file.clone(), fields));
            }
        }
    }
    match declared {
        Some(declared) if declared != called => problems.push(format!(
            "C_FUNCTIONS and the ccalls differ: listed but not called {:?}, called but not listed {:?}",
            declared.difference(&called).collect::<Vec<_>>(),
            called.difference(&declared).collect::<Vec<_>>()
        )),
        Some(_) => {}
        None => problems.push("no `const C_FUNCTIONS = (...)` list".to_string()),
    }
    for name in MIRRORED_STRUCTS {
        let Some((file, fields)) = structs.get(name) else {
            problems.push(format!("no Julia mirror of struct {name}"));
            continue;
        };
        let c_fields = &header.structs[name];
        let c_names: Vec<&str> = c_fields.iter().map(|(n, _)| n.as_str()).collect();
        let j_names: Vec<&str> = fields.iter().map(|(n, _)| n.as_str()).collect();
        if c_names != j_names {
            problems.push(format!(
                "{file}: struct {name}: fields {j_names:?}, but mqttclient.h has {c_names:?}"
            ));
            continue;
        }
        for ((field, c), (_, j)) in c_fields.iter().zip(fields) {
            if !compatible(c, j, header) {
                problems.push(format!("{file}: {name}.{field}: C type {c} but Julia type {j}"));
            }
        }
    }
    (problems, called)
}

/// Every `.jl` file under `dir`, sorted.
fn julia_files(dir: &Path) -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(&path, out);
            } else if path.extension().is_some_and(|e| e == "jl") {
                out.push(path);
            }
        }
    }
    let mut files = Vec::new();
    walk(dir, &mut files);
    files.sort();
    files
}

fn julia_sources() -> Vec<(String, String)> {
    julia_files(&project_dir().join("julia/MQTTClient"))
        .into_iter()
        .map(|p| {
            let name = p.strip_prefix(project_dir()).unwrap().display().to_string();
            (name, std::fs::read_to_string(&p).unwrap())
        })
        .collect()
}

#[test]
fn julia_wrapper_ccalls_match_the_header() {
    let header = project_header();
    assert!(header.functions.len() > 20 && header.structs.contains_key("mqttc_event"));
    let (problems, called) = check_julia(&julia_sources(), &header);
    assert!(
        problems.is_empty(),
        "the Julia package disagrees with mqttclient.h:\n{}",
        problems.join("\n")
    );
    // Guards against a checker that silently finds nothing.
    for f in [
        "mqttc_client_new",
        "mqttc_event_next",
        "mqttc_event_free",
        "mqttc_client_free",
    ] {
        assert!(called.contains(f), "no ccall of {f} found");
    }
}

#[test]
fn the_checker_reports_wrong_ccalls_and_structs() {
    let header = project_header();
    let fake = r#"
const C_FUNCTIONS = (:mqttc_connect, :mqttc_publish, :mqttc_nonexistent, :mqttc_event_free)
# ccall(sym(:mqttc_in_a_comment), Cint, ())  is not a call
connect(h, t) = ccall(sym(:mqttc_connect), Cint, (Ptr{Cvoid},), h, t)
publish(h) = ccall(sym(:mqttc_publish), Cint,
    (Ptr{Cvoid}, Cstring, Ptr{UInt8}, Csize_t, Cint, Cint, Ref{UInt64}), h, "t", C_NULL, 0, 0, 0, C_NULL)
gone() = ccall(sym(:mqttc_nonexistent), Cint, ())
free(e) = ccall(sym(:mqttc_event_free), Cvoid, (Ptr{mqttc_event},), e, e)
other() = @ccall libmqttclient.mqttc_version()::Cstring
struct mqttc_message
    topic::Ptr{UInt8}
    payload::Ptr{UInt8}
    topic_len::Csize_t
    payload_len::Csize_t
    qos::Cint
    retain::Bool
    dup::Bool
end
struct mqttc_connection_event
    change::Cint
    reason::Cint
    session_present::Cint
    server::Ptr{UInt8}
    detail::Ptr{UInt8}
end
note = "x $(join(["a", "b"], ", ")) ccall(sym(:mqttc_in_a_string), Cint, ())"
quotes = ('"', x', """ccall(sym(:mqttc_in_a_docstring), Cint, ())""")
late(h) = ccall(sym(:mqttc_client_free), Cvoid, (Ptr{Cvoid}, Cint), h, 0)
"#;
    let (problems, _) = check_julia(&[("fake.jl".to_string(), fake.to_string())], &header);
    let all = problems.join("\n");
    for expected in [
        "fake.jl:4: mqttc_connect takes 2 parameter(s) in mqttclient.h, the ccall declares 1",
        "fake.jl:5: mqttc_publish parameter 6: C type bool but Julia type Cint",
        "fake.jl:7: mqttc_nonexistent is not declared in mqttclient.h",
        "fake.jl:8: mqttc_event_free declares 1 argument type(s) but passes 2 argument(s)",
        "fake.jl:9: @ccall",
        "struct mqttc_message: fields [\"topic\", \"payload\", \"topic_len\"",
        "mqttc_connection_event.session_present: C type bool but Julia type Cint",
        "no Julia mirror of struct mqttc_options",
        "fake.jl:28: mqttc_client_free takes 1 parameter(s) in mqttclient.h, the ccall declares 2",
    ] {
        assert!(all.contains(expected), "not reported: {expected}\nreported:\n{all}");
    }
    for hidden in ["mqttc_in_a_comment", "mqttc_in_a_string", "mqttc_in_a_docstring"] {
        assert!(!all.contains(hidden), "a comment or string was read as code:\n{all}");
    }
}

// ------------------------------------------------------------------------------------------------
// Julia syntax

/// Runs tests/python/julia_parse.py, with the interpreter of the venv scripts/deps.sh makes (it has
/// tree-sitter and tree-sitter-julia), on `files`: (exit code, what it printed).
fn parse_julia(files: &[PathBuf]) -> (i32, String) {
    let python = project_dir().join("target/julia-syntax-venv/bin/python");
    assert!(python.is_file(), "{} is missing: run scripts/deps.sh", python.display());
    let (code, out, err) = run_program(
        Command::new(python)
            .arg(project_dir().join("tests/python/julia_parse.py"))
            .args(files),
        Duration::from_secs(120),
    );
    (code, format!("{out}{err}"))
}

#[test]
fn every_julia_file_parses_with_the_julia_grammar() {
    let files = julia_files(&project_dir().join("julia"));
    for expected in ["src/MQTTClient.jl", "test/runtests.jl", "examples/basic.jl"] {
        assert!(
            files.iter().any(|f| f.ends_with(expected)),
            "{expected} not among {files:?}"
        );
    }
    let (code, out) = parse_julia(&files);
    assert_eq!(code, 0, "the Julia grammar finds syntax errors:\n{out}");
    assert!(
        out.contains(&format!("{} file(s) parsed, 0 error(s)", files.len())),
        "{out}"
    );
}

#[test]
fn the_syntax_check_reports_broken_julia() {
    let dir = common::temp_dir("julia-syntax");
    let snippets = [
        ("missing_paren.jl", "x = 1\ny = f(x\n"),
        ("unclosed.jl", "a = 1\n\nfunction g()\n    a +\nend\n"),
        ("fine.jl", "ok(x) = x + 1\n"),
    ];
    let files = common::write_files(&dir, &snippets);
    let (code, out) = parse_julia(&files);
    assert_eq!(code, 1, "broken Julia was accepted:\n{out}");
    for expected in [
        "missing_paren.jl:2:8: syntax error: missing ')': y = f(x",
        "unclosed.jl:3:1: syntax error: code the Julia grammar cannot parse: function g()",
        "3 file(s) parsed, 2 error(s)",
    ] {
        assert!(out.contains(expected), "not reported: {expected}\nreported:\n{out}");
    }
    assert!(!out.contains("fine.jl:"), "valid Julia reported:\n{out}");
}

// ------------------------------------------------------------------------------------------------
// The Python mirror

/// The `mqttc_*` functions the Python mirror calls (as `_lib.mqttc_name(`).
fn python_calls(src: &str) -> BTreeSet<String> {
    src.match_indices("_lib.mqttc_")
        .filter_map(|(i, _)| {
            let rest = &src[i + "_lib.".len()..];
            let end = rest.find(|ch: char| !(ch.is_ascii_alphanumeric() || ch == '_'))?;
            rest[end..].starts_with('(').then(|| rest[..end].to_string())
        })
        .collect()
}

/// The mirror's `PROTOTYPES` table, one `"name": (result, [arguments]),` per line: name => arity.
fn python_prototypes(src: &str) -> BTreeMap<String, usize> {
    let start = src.find("PROTOTYPES = {").expect("PROTOTYPES table");
    let table = &src[start..start + src[start..].find("\n}").expect("end of PROTOTYPES")];
    table
        .lines()
        .filter_map(|line| {
            let line = line.trim();
            let name = line.strip_prefix('"')?.split('"').next()?;
            let list = &line[line.find('[')? + 1..line.rfind(']')?];
            let chars: Vec<char> = format!("{list})").chars().collect();
            Some((name.to_string(), split_arguments(&chars, 0).0.len()))
        })
        .collect()
}

/// The field names of `class name(ctypes.Structure)` in the mirror, in order.
fn python_struct_fields(src: &str, name: &str) -> Option<Vec<String>> {
    let start = src.find(&format!("class {name}(ctypes.Structure):"))?;
    let fields = &src[start..];
    let list = &fields[fields.find("_fields_ = [")?..fields.find("\n    ]")?];
    Some(
        list.lines()
            .filter_map(|l| l.trim().strip_prefix("(\"")?.split('"').next().map(str::to_string))
            .collect(),
    )
}

fn python_mirror() -> PathBuf {
    project_dir().join("tests/python/julia_mirror.py")
}

#[test]
fn julia_and_python_call_the_same_c_functions() {
    let header = project_header();
    let (_, julia) = check_julia(&julia_sources(), &header);
    let src = std::fs::read_to_string(python_mirror()).unwrap();
    let python = python_calls(&src);
    assert_eq!(
        julia,
        python,
        "the Python mirror must call what the Julia package calls: only Julia {:?}, only Python {:?}",
        julia.difference(&python).collect::<Vec<_>>(),
        python.difference(&julia).collect::<Vec<_>>()
    );
    let prototypes = python_prototypes(&src);
    assert_eq!(
        prototypes.keys().cloned().collect::<BTreeSet<_>>(),
        python,
        "PROTOTYPES must declare exactly the functions the mirror calls"
    );
    for (name, arity) in &prototypes {
        let params = header.functions[name].1.len();
        assert_eq!(
            *arity, params,
            "{name}: PROTOTYPES has {arity} argument(s), mqttclient.h {params}"
        );
    }
    for name in MIRRORED_STRUCTS {
        let c: Vec<&str> = header.structs[name].iter().map(|(f, _)| f.as_str()).collect();
        let py = python_struct_fields(&src, name).unwrap_or_else(|| panic!("no ctypes mirror of {name}"));
        assert_eq!(py, c, "ctypes mirror of {name}");
    }
}

/// Lines the scenarios print, one per check (f may be skipped when mosquitto makes no Unix-socket
/// listener).
const SCENARIO_CHECKS: [&str; 20] = [
    "PASS a: seed example",
    "PASS b: overlapping filters",
    "PASS c: QoS 1 and QoS 2 round trips",
    "PASS d: errors are MQTTException",
    "PASS e: connect again after disconnect",
    "PASS f: MakeConnection(path) over a Unix socket",
    "PASS g: back-pressure",
    "PASS h: Client() then connect(client, connection)",
    "PASS i: MQTT 5",
    "PASS j: ack_after_callback",
    "PASS k: options reach the library",
    "PASS l: TLS",
    "PASS m: Servers(\"ws://...\") round trip over a WebSocket",
    "PASS n: the event task starts with an operation",
    "PASS o: a completion drained before its future was registered",
    "PASS p: finalizers",
    "PASS q: library_path",
    "PASS r: the message store",
    "PASS s: set_credentials and set_will / clear_will change the next connection",
    "PASS z: no library thread entered Python",
];

/// The mirror's scenarios against real brokers: mosquitto over TCP and a Unix socket, mosquitto
/// with TLS (certificates made for the test), a mosquitto with a password file and a per-user
/// ACL, and amqtt with a WebSocket listener.
#[test]
fn python_mirror_of_the_julia_wrapper_runs_against_mosquitto() {
    let library = lib_dir().join("libmqttclient.so");
    assert!(
        library.exists(),
        "{} is missing: run `cargo build --lib` before the tests (scripts/test.sh does)",
        library.display()
    );
    let dir = common::temp_dir("julia-mirror");
    let socket = dir.join("mqtt.sock");
    let broker = Broker::start_with(&format!("listener 0 {}\nallow_anonymous true", socket.display()));
    let pki = common::pki::Pki::new();
    let tls_broker = Broker::start_with(&pki.mosquitto_tls(false));
    let ws_broker = common::amqtt::Amqtt::start_ws(None);
    let users_broker = Broker::start_with_users(&dir.join("passwd"), &[("alice", "pw-a"), ("bob", "pw-b")]);
    // The broker answers on TCP first; the Unix listener may still be on its way.
    let deadline = Instant::now() + Duration::from_secs(5);
    while !socket.exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut mirror = Command::new("python3");
    // cargo puts target/debug on it: without, the library search of check q goes past the system
    // library path and must name every place it looked at.
    mirror
        .env_remove("LD_LIBRARY_PATH")
        .arg(python_mirror())
        .arg("--lib")
        .arg(&library)
        .args(["--port", &broker.port.to_string()])
        .args(["--tls-port", &tls_broker.port.to_string()])
        .arg("--tls-ca")
        .arg(&pki.ca)
        .args(["--ws-port", &ws_broker.port.to_string()])
        .args(["--users-port", &users_broker.port.to_string()]);
    if socket.exists() {
        mirror.arg("--unix").arg(&socket);
    } else {
        eprintln!(
            "this mosquitto made no Unix-socket listener ({}): check f is skipped",
            socket.display()
        );
    }
    let (code, out, err) = run_program(&mut mirror, Duration::from_secs(300));
    print!("{out}");
    assert_eq!(code, 0, "the Python mirror failed\nstdout:\n{out}\nstderr:\n{err}");
    for check in SCENARIO_CHECKS {
        let skipped = !socket.exists() && check.starts_with("PASS f") && out.contains("SKIP f");
        assert!(
            skipped || out.lines().any(|l| l.starts_with(check)),
            "missing `{check}` in\n{out}\nstderr:\n{err}"
        );
    }
}
