//! The library's version at run time, to compare with the `MQTTC_VERSION_*` macros that build.rs
//! writes into the header (the version a program was compiled against).
use std::ffi::{CStr, c_char};

use super::guard;

/// `CARGO_PKG_VERSION` as a C string.
const VERSION: &CStr = match CStr::from_bytes_with_nul(concat!(env!("CARGO_PKG_VERSION"), "\0").as_bytes()) {
    Ok(v) => v,
    Err(_) => panic!("the crate version contains a NUL byte"),
};

/// Parses one decimal component of the crate version at compile time.
const fn component(s: &str) -> u32 {
    let b = s.as_bytes();
    let mut n = 0;
    let mut i = 0;
    while i < b.len() {
        assert!(b[i].is_ascii_digit(), "version component is not a number");
        n = n * 10 + (b[i] - b'0') as u32;
        i += 1;
    }
    n
}

/// MAJOR * 10000 + MINOR * 100 + PATCH, as `MQTTC_VERSION_NUMBER` in the header (build.rs refuses
/// a minor or patch above 99, which this encoding cannot hold).
const VERSION_NUMBER: u32 = component(env!("CARGO_PKG_VERSION_MAJOR")) * 10000
    + component(env!("CARGO_PKG_VERSION_MINOR")) * 100
    + component(env!("CARGO_PKG_VERSION_PATCH"));

/// The library's version as a static string, e.g. "0.1.0": the `MQTTC_VERSION_STRING` of the
/// header it was built with. Never NULL; owned by the library and valid for the life of the
/// process: never free it.
#[unsafe(no_mangle)]
pub extern "C" fn mqttc_version() -> *const c_char {
    // Nothing here can panic, but every exported function keeps to the panic boundary; the
    // initial value is what a caught panic would return.
    let mut version = VERSION.as_ptr();
    let _ = guard(|| {
        version = VERSION.as_ptr();
        Ok(())
    });
    version
}

/// The library's version as one number, MAJOR * 10000 + MINOR * 100 + PATCH (0.1.0 gives 100): the
/// `MQTTC_VERSION_NUMBER` of the header it was built with. Compare it with `MQTTC_VERSION_NUMBER`
/// to check that the library loaded at run time is the one a program was compiled against.
#[unsafe(no_mangle)]
pub extern "C" fn mqttc_version_number() -> u32 {
    let mut number = VERSION_NUMBER;
    let _ = guard(|| {
        number = VERSION_NUMBER;
        Ok(())
    });
    number
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_functions_match_the_crate_and_the_header_macros() {
        // SAFETY: mqttc_version returns a static NUL-terminated string.
        let version = unsafe { CStr::from_ptr(mqttc_version()) }.to_str().unwrap();
        assert_eq!(version, env!("CARGO_PKG_VERSION"));
        let parts: Vec<u32> = [
            env!("CARGO_PKG_VERSION_MAJOR"),
            env!("CARGO_PKG_VERSION_MINOR"),
            env!("CARGO_PKG_VERSION_PATCH"),
        ]
        .iter()
        .map(|p| p.parse().unwrap())
        .collect();
        assert_eq!(mqttc_version_number(), parts[0] * 10000 + parts[1] * 100 + parts[2]);

        let header = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/include/mqttclient.h")).unwrap();
        let expected = [
            ("MQTTC_VERSION_MAJOR", parts[0].to_string()),
            ("MQTTC_VERSION_MINOR", parts[1].to_string()),
            ("MQTTC_VERSION_PATCH", parts[2].to_string()),
            ("MQTTC_VERSION_STRING", format!("\"{version}\"")),
            ("MQTTC_VERSION_NUMBER", mqttc_version_number().to_string()),
        ];
        for (name, value) in expected {
            let line = format!("#define {name} {value}");
            assert!(header.lines().any(|l| l == line), "include/mqttclient.h lacks `{line}`");
        }
    }
}
