//! Generates `include/mqttclient.h` from `src/ffi` with cbindgen.
//!
//! The header is committed so that C users need no Rust toolchain to read it; CI regenerates it and
//! fails when the committed copy differs (header drift). We only rewrite the file when its content
//! changes, so an unchanged header never retriggers CMake or cargo rebuilds.
//!
//! It also writes the `MQTTC_VERSION_*` macros into the header.
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
    let version = Version::from_env();
    let mut config = cbindgen::Config::from_file(crate_dir.join("cbindgen.toml")).expect("cbindgen.toml is valid");
    // The version macros come from Cargo.toml, which cbindgen cannot evaluate in Rust constants.
    let macros = version.header_macros();
    config.after_includes = Some(match config.after_includes.take() {
        Some(more) => format!("{macros}\n{more}"),
        None => macros,
    });
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

/// The crate's version, from the variables cargo sets from Cargo.toml.
struct Version {
    major: u32,
    minor: u32,
    patch: u32,
    full: String,
}

impl Version {
    fn from_env() -> Version {
        let part = |name: &str| -> u32 {
            let v = env::var(name).unwrap_or_else(|_| panic!("cargo sets {name}"));
            v.parse().unwrap_or_else(|_| panic!("{name}={v} is not a number"))
        };
        let v = Version {
            major: part("CARGO_PKG_VERSION_MAJOR"),
            minor: part("CARGO_PKG_VERSION_MINOR"),
            patch: part("CARGO_PKG_VERSION_PATCH"),
            full: env::var("CARGO_PKG_VERSION").expect("cargo sets CARGO_PKG_VERSION"),
        };
        // MQTTC_VERSION_NUMBER gives minor and patch two decimal digits each.
        assert!(
            v.minor < 100 && v.patch < 100,
            "version {} does not fit MQTTC_VERSION_NUMBER",
            v.full
        );
        v
    }

    /// The header's version macros (the same values `mqttc_version` and `mqttc_version_number`
    /// return from the library; src/ffi/version.rs tests that they agree).
    fn header_macros(&self) -> String {
        let Version {
            major,
            minor,
            patch,
            full,
        } = self;
        format!(
            "
/**
 * The version of this header. Compare with mqttc_version() / mqttc_version_number() to check that
 * the library loaded at run time is the one a program was compiled against.
 */
#define MQTTC_VERSION_MAJOR {major}
#define MQTTC_VERSION_MINOR {minor}
#define MQTTC_VERSION_PATCH {patch}
#define MQTTC_VERSION_STRING \"{full}\"
/**
 * MQTTC_VERSION_MAJOR * 10000 + MQTTC_VERSION_MINOR * 100 + MQTTC_VERSION_PATCH.
 */
#define MQTTC_VERSION_NUMBER {}",
            major * 10000 + minor * 100 + patch
        )
    }
}
