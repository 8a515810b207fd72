//! Generates `include/mqttclient.h` from `src/ffi` with cbindgen.
//!
//! The header is committed so that C users need no Rust toolchain to read it; CI regenerates it and
//! fails when the committed copy differs (header drift). We only rewrite the file when its content
//! changes, so an unchanged header never retriggers CMake or cargo rebuilds.
use std::{env, fs, path::PathBuf};

fn main() {
    let crate_dir = PathBuf::from(env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    println!("cargo:rerun-if-changed=src/ffi");
    // Integration tests compile C programs with the `cc` crate, which wants the target triple.
    println!(
        "cargo:rustc-env=MQTTC_TARGET={}",
        env::var("TARGET").expect("cargo sets TARGET")
    );
    println!("cargo:rerun-if-changed=cbindgen.toml");
    let config = cbindgen::Config::from_file(crate_dir.join("cbindgen.toml")).expect("cbindgen.toml is valid");
    let bindings = match cbindgen::Builder::new()
        .with_crate(&crate_dir)
        .with_config(config)
        .generate()
    {
        Ok(b) => b,
        Err(e) => {
            // A parse error in src/ is reported by rustc with a better message; don't fail twice.
            println!("cargo:warning=cbindgen could not generate the header: {e}");
            return;
        }
    };
    let mut out = Vec::new();
    bindings.write(&mut out);
    let path = crate_dir.join("include").join("mqttclient.h");
    if fs::read(&path).ok().as_deref() != Some(&out[..]) {
        fs::create_dir_all(path.parent().expect("include/ has a parent")).expect("create include/");
        fs::write(&path, out).expect("write include/mqttclient.h");
    }
}
