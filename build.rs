//! Generates `include/mqttclient.h` from `src/ffi` with cbindgen.
//!
//! The header is committed so that C users need no Rust toolchain to read it; CI regenerates it and
//! fails when the committed copy differs (header drift). We only rewrite the file when its content
//! changes, so an unchanged header never retriggers CMake or cargo rebuilds.
//!
//! It also writes the `MQTTC_VERSION_*` macros into the header and, on Linux, gives the shared
//! library its SONAME (see `set_soname`).
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
    set_soname(&version);
    // The tests check that C programs find the library under this name.
    println!("cargo:rustc-env=MQTTC_SONAME={}", version.soname());
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

    /// The shared library's SONAME, by the policy docs/install.md states: while the version is
    /// 0.x, when any minor version may break the ABI (CHANGELOG.md), `libmqttclient.so.0.<minor>`,
    /// so that a program built against 0.1 never loads 0.2; from 1.0 on, `libmqttclient.so.<major>`.
    /// CMakeLists.txt gives the installed links the same names, and scripts/packaging.sh checks
    /// the installed library's SONAME against the policy.
    fn soname(&self) -> String {
        match self.major {
            0 => format!("libmqttclient.so.0.{}", self.minor),
            major => format!("libmqttclient.so.{major}"),
        }
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

/// On Linux, gives the shared library its SONAME (`Version::soname`: `libmqttclient.so.0.<minor>`
/// before 1.0), and puts a symlink of that name next to the `libmqttclient.so` cargo writes.
///
/// Why the symlink: a program linked with `-L <dir> -lmqttclient` records the SONAME, not the file
/// name, as its NEEDED entry, so at run time the loader looks for `libmqttclient.so.0.1` (say) in
/// the program's rpath. An install provides that name (CMakeLists.txt installs the library as
/// `libmqttclient.so.<version>` with SONAME and `.so` symlinks), but cargo only writes
/// `libmqttclient.so`. Making the link here, once per target directory and profile, serves every
/// program linked against cargo's output — the C tests (`target/debug`), CMake's build tree
/// (`build/cargo/release`) and hand builds against `target/release` — instead of teaching each of
/// them. Programs that dlopen the file by path (the Python and Julia code) need no link.
///
/// Cargo gives build scripts no variable for the artifact directory: it is the directory that
/// holds `build/` and so OUT_DIR (`<dir>/build/mqttclient-<hash>/out`). A dangling link until the
/// library is first linked is harmless. `cargo clean` removes it, and this script then runs again.
/// (With cargo's `build.build-dir` set apart from the target directory, the link lands in the
/// build directory instead; make it by hand then.)
fn set_soname(version: &Version) {
    if env::var("CARGO_CFG_TARGET_OS").as_deref() != Ok("linux") {
        return;
    }
    let soname = version.soname();
    println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,{soname}");
    let out_dir = PathBuf::from(env::var("OUT_DIR").expect("cargo sets OUT_DIR"));
    let Some(artifact_dir) = out_dir
        .ancestors()
        .nth(3)
        .filter(|_| out_dir.ancestors().nth(2).and_then(|b| b.file_name()) == Some("build".as_ref()))
    else {
        println!(
            "cargo:warning=unexpected OUT_DIR {}: no {soname} symlink made",
            out_dir.display()
        );
        return;
    };
    make_symlink(&artifact_dir.join(&soname), "libmqttclient.so");
}

#[cfg(unix)]
fn make_symlink(link: &std::path::Path, target: &str) {
    if fs::read_link(link).is_ok_and(|t| t == std::path::Path::new(target)) {
        return;
    }
    let _ = fs::remove_file(link);
    if let Err(e) = std::os::unix::fs::symlink(target, link) {
        println!("cargo:warning=could not make {} -> {target}: {e}", link.display());
    }
}

#[cfg(not(unix))]
fn make_symlink(link: &std::path::Path, _target: &str) {
    println!(
        "cargo:warning=no symlink support on this host: {} not made",
        link.display()
    );
}
