use std::fmt;

use bytes::Bytes;
use bytestring::ByteString;

use super::CodecError;
use super::fields::MAX_FIELD_LEN;

/// A UTF-8 string as MQTT defines it (well-formed UTF-8, no U+0000, at most 65535 bytes; section 1.5.3),
/// backed by `Bytes` so a decoded topic is a zero-copy slice of the read buffer. A `ByteString`
/// remembers that its bytes were checked as UTF-8, so reading the text (encoding, decoding, the
/// trie match, the callback) does not validate it again.
/// The default is the empty string.
#[derive(Clone, Default, PartialEq, Eq, Hash)]
pub struct MqttStr(ByteString);

impl MqttStr {
    /// Copies `s`.
    pub fn new(s: &str) -> Result<MqttStr, CodecError> {
        check(s)?;
        Ok(MqttStr(ByteString::from(s)))
    }

    /// Takes `b` without copying.
    pub fn from_bytes(b: Bytes) -> Result<MqttStr, CodecError> {
        // std's validator rejects overlong forms, encoded surrogates and bytes that never occur in UTF-8,
        // exactly the "ill-formed" set of MQTT-1.5.3-1.
        let s = ByteString::try_from(b).map_err(|_| CodecError::InvalidUtf8)?;
        check(&s)?;
        Ok(MqttStr(s))
    }

    #[inline]
    pub fn as_str(&self) -> &str {
        &self.0
    }

    #[inline]
    pub fn as_bytes(&self) -> &Bytes {
        self.0.as_bytes()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

fn check(s: &str) -> Result<(), CodecError> {
    if s.len() > MAX_FIELD_LEN {
        Err(CodecError::StringTooLong(s.len()))
    } else if s.contains('\0') {
        Err(CodecError::NulInString)
    } else {
        Ok(())
    }
}

impl fmt::Debug for MqttStr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl fmt::Display for MqttStr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl AsRef<str> for MqttStr {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_copies_and_reads_back() {
        let s = MqttStr::new("sensors/température").unwrap();
        assert_eq!(s.as_str(), "sensors/température");
        assert_eq!(s.len(), "sensors/température".len());
        assert!(!s.is_empty());
        assert!(MqttStr::new("").unwrap().is_empty());
        assert_eq!(format!("{s:?}"), "\"sensors/température\"");
        assert_eq!(s.to_string(), "sensors/température");
    }

    #[test]
    fn length_limit_is_65535_bytes() {
        assert!(MqttStr::new(&"x".repeat(65_535)).is_ok());
        assert_eq!(
            MqttStr::new(&"x".repeat(65_536)),
            Err(CodecError::StringTooLong(65_536))
        );
        assert_eq!(
            MqttStr::from_bytes(Bytes::from(vec![b'x'; 70_000])),
            Err(CodecError::StringTooLong(70_000))
        );
    }

    #[test]
    fn nul_is_rejected() {
        assert_eq!(MqttStr::new("a\0b"), Err(CodecError::NulInString));
        assert_eq!(
            MqttStr::from_bytes(Bytes::from_static(b"\0")),
            Err(CodecError::NulInString)
        );
    }

    #[test]
    fn ill_formed_utf8_is_rejected() {
        let cases: &[&[u8]] = &[
            b"\xC0\xAF",     // overlong '/'
            b"\xC0\x80",     // overlong U+0000, the classic way to smuggle a NUL
            b"\xE0\x80\xAF", // three-byte overlong '/'
            b"\xED\xA0\x80", // surrogate U+D800
            b"\xED\xBF\xBF", // surrogate U+DFFF
            b"\xFF",
            b"a\xFEb",
            b"\xE2\x82",         // truncated sequence
            b"\xF4\x90\x80\x80", // beyond U+10FFFF
        ];
        for bytes in cases {
            assert_eq!(
                MqttStr::from_bytes(Bytes::from_static(bytes)),
                Err(CodecError::InvalidUtf8),
                "{bytes:x?}"
            );
        }
    }

    #[test]
    fn from_bytes_does_not_copy() {
        let backing = Bytes::from_static(b"xxtopic/axx");
        let slice = backing.slice(2..9);
        let s = MqttStr::from_bytes(slice).unwrap();
        assert_eq!(s.as_str(), "topic/a");
        assert_eq!(s.as_bytes().as_ptr(), backing[2..].as_ptr());
    }
}
