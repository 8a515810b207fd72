//! scripts/bench.py, the benchmark suite, stays a valid program: it compiles and its command line
//! parses (`--help`). Running it builds in release mode and measures for minutes, which is no test;
//! `scripts/bench.py --quick` is its smoke run.
use std::path::PathBuf;
use std::process::Command;

fn script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scripts/bench.py")
}

/// Runs python3 with `args`; returns stdout, panicking with the output unless it exits 0.
fn python(args: &[&str]) -> String {
    let out = Command::new("python3")
        .args(args)
        // py_compile writes bytecode: into a temporary directory, not beside the script.
        .env(
            "PYTHONPYCACHEPREFIX",
            std::env::temp_dir().join("mqttc-bench-suite-pycache"),
        )
        .output()
        .expect("run python3");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "python3 {args:?}: {}\nstdout: {stdout}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

#[test]
fn bench_script_compiles_and_describes_its_options() {
    let path = script();
    let path = path.to_str().unwrap();
    python(&["-m", "py_compile", path]);
    let help = python(&[path, "--help"]);
    for option in ["--rounds", "--quick", "--json", "--compare", "--only", "--fleet-sizes"] {
        assert!(help.contains(option), "--help lacks {option}:\n{help}");
    }
    for section in [
        "modes", "scale", "payload", "idle", "trie", "floor", "store", "fleet", "compare",
    ] {
        assert!(help.contains(section), "--help lacks section {section}:\n{help}");
    }
}
