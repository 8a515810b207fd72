//! CONNECT (section 3.1).

use bytes::{BufMut, Bytes, BytesMut};

use super::fields::{check_binary_len, expect_end, field_len, read_binary, read_str, read_u8, read_u16, write_field};
use super::header::PacketType;
use super::properties::Holder;
use super::{CodecError, Encode, MqttStr, Properties, QoS, Version};
use crate::topic::validate_topic_name;

const PROTOCOL_NAME: &[u8] = b"MQTT";
/// Protocol name field, level, flags, keep alive.
const VARIABLE_HEADER_LEN: usize = 2 + PROTOCOL_NAME.len() + 1 + 1 + 2;

// Connect flag bits (section 3.1.2.3).
const RESERVED: u8 = 0b0000_0001;
/// Clean Session in 3.1.1, Clean Start in MQTT 5 (which moves session lifetime to the Session
/// Expiry Interval property).
const CLEAN_SESSION: u8 = 0b0000_0010;
const WILL: u8 = 0b0000_0100;
const WILL_QOS_SHIFT: u8 = 3;
const WILL_QOS_MASK: u8 = 0b0001_1000;
const WILL_RETAIN: u8 = 0b0010_0000;
const PASSWORD: u8 = 0b0100_0000;
const USERNAME: u8 = 0b1000_0000;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Will {
    pub topic: MqttStr,
    pub payload: Bytes,
    pub qos: QoS,
    pub retain: bool,
    /// MQTT 5 will properties (delay, expiry, content type, ...).
    pub properties: Properties,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Connect {
    /// The protocol the client asks for. A CONNECT is always written in its own version,
    /// whatever version `encode` is given, since it is what chooses the connection's.
    pub version: Version,
    /// Clean Start in MQTT 5.
    pub clean_session: bool,
    pub keep_alive: u16,
    pub client_id: MqttStr,
    pub will: Option<Will>,
    pub username: Option<MqttStr>,
    pub password: Option<Bytes>,
    pub properties: Properties,
}

impl Connect {
    pub(crate) fn read(mut body: Bytes) -> Result<Connect, CodecError> {
        // Compared as bytes: a name that is not even UTF-8 is still just the wrong protocol.
        if read_binary(&mut body)? != PROTOCOL_NAME {
            return Err(CodecError::InvalidProtocolName);
        }
        let version = Version::from_level(read_u8(&mut body)?)?;
        let flags = read_u8(&mut body)?;
        let has_will = flags & WILL != 0;
        // MQTT-3.1.2-3 (reserved bit), MQTT-3.1.2-13/-15 (will QoS and retain need the will flag),
        // MQTT-3.1.2-22 of 3.1.1 (no password without a user name; MQTT 5 allows one).
        if flags & RESERVED != 0
            || (!has_will && flags & (WILL_QOS_MASK | WILL_RETAIN) != 0)
            || (version == Version::V311 && flags & PASSWORD != 0 && flags & USERNAME == 0)
        {
            return Err(CodecError::InvalidConnectFlags(flags));
        }
        let keep_alive = read_u16(&mut body)?;
        let properties = Properties::read_in(&mut body, Holder::Packet(PacketType::Connect), version)?;
        // Payload order is fixed by section 3.1.3: client id, will (properties,) topic, will message,
        // user name, password.
        let client_id = read_str(&mut body)?;
        let will = if has_will {
            let qos = QoS::from_u8((flags & WILL_QOS_MASK) >> WILL_QOS_SHIFT)?;
            let properties = Properties::read_in(&mut body, Holder::Will, version)?;
            let topic = read_str(&mut body)?;
            validate_topic_name(topic.as_str())?;
            Some(Will {
                topic,
                payload: read_binary(&mut body)?,
                qos,
                retain: flags & WILL_RETAIN != 0,
                properties,
            })
        } else {
            None
        };
        let username = if flags & USERNAME != 0 {
            Some(read_str(&mut body)?)
        } else {
            None
        };
        let password = if flags & PASSWORD != 0 {
            Some(read_binary(&mut body)?)
        } else {
            None
        };
        expect_end(&body)?;
        Ok(Connect {
            version,
            clean_session: flags & CLEAN_SESSION != 0,
            keep_alive,
            client_id,
            will,
            username,
            password,
            properties,
        })
    }

    fn flags(&self) -> u8 {
        let mut flags = 0;
        if self.clean_session {
            flags |= CLEAN_SESSION;
        }
        if let Some(will) = &self.will {
            flags |= WILL | (will.qos as u8) << WILL_QOS_SHIFT;
            if will.retain {
                flags |= WILL_RETAIN;
            }
        }
        if self.username.is_some() {
            flags |= USERNAME;
        }
        if self.password.is_some() {
            flags |= PASSWORD;
        }
        flags
    }
}

impl Encode for Connect {
    fn first_byte(&self) -> u8 {
        PacketType::Connect.first_byte()
    }

    fn validate(&self, _: Version) -> Result<(), CodecError> {
        let version = self.version;
        if version == Version::V311 && self.password.is_some() && self.username.is_none() {
            return Err(CodecError::InvalidConnectFlags(self.flags()));
        }
        self.properties
            .validate_in(Holder::Packet(PacketType::Connect), version)?;
        if let Some(will) = &self.will {
            validate_topic_name(will.topic.as_str())?;
            check_binary_len(&will.payload)?;
            will.properties.validate_in(Holder::Will, version)?;
        }
        if let Some(password) = &self.password {
            check_binary_len(password)?;
        }
        Ok(())
    }

    fn remaining_len(&self, _: Version) -> usize {
        let version = self.version;
        VARIABLE_HEADER_LEN
            + self.properties.len_in(version)
            + field_len(self.client_id.as_bytes())
            + self.will.as_ref().map_or(0, |will| {
                will.properties.len_in(version) + field_len(will.topic.as_bytes()) + field_len(&will.payload)
            })
            + self.username.as_ref().map_or(0, |u| field_len(u.as_bytes()))
            + self.password.as_ref().map_or(0, |p| field_len(p))
    }

    fn write_body(&self, buf: &mut BytesMut, _: Version) {
        let version = self.version;
        write_field(buf, PROTOCOL_NAME);
        buf.put_u8(version as u8);
        buf.put_u8(self.flags());
        buf.put_u16(self.keep_alive);
        self.properties.write_in(buf, version);
        write_field(buf, self.client_id.as_bytes());
        if let Some(will) = &self.will {
            will.properties.write_in(buf, version);
            write_field(buf, will.topic.as_bytes());
            write_field(buf, &will.payload);
        }
        if let Some(username) = &self.username {
            write_field(buf, username.as_bytes());
        }
        if let Some(password) = &self.password {
            write_field(buf, password);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::Packet;
    use crate::codec::PropertyId;
    use crate::codec::test_util::{V5, decode_in, decode_one, encode_err, frame, round_trip};
    use crate::topic::TopicError;

    fn s(text: &str) -> MqttStr {
        MqttStr::new(text).unwrap()
    }

    fn minimal() -> Connect {
        Connect {
            version: Version::V311,
            clean_session: true,
            keep_alive: 60,
            client_id: s("abc"),
            will: None,
            username: None,
            password: None,
            properties: Properties::new(),
        }
    }

    fn full() -> Connect {
        Connect {
            version: Version::V311,
            clean_session: true,
            keep_alive: 10,
            client_id: s("cid"),
            will: Some(Will {
                topic: s("w/t"),
                payload: Bytes::from_static(b"bye"),
                qos: QoS::AtLeastOnce,
                retain: false,
                properties: Properties::new(),
            }),
            username: Some(s("user")),
            password: Some(Bytes::from_static(b"pass")),
            properties: Properties::new(),
        }
    }

    /// The bytes of `full()`; flags 0xCE and keep alive 10 are the example of section 3.1.2.10.
    const FULL_WIRE: &[u8] = b"\x10\x25\
        \x00\x04MQTT\x04\xCE\x00\x0A\
        \x00\x03cid\
        \x00\x03w/t\x00\x03bye\
        \x00\x04user\
        \x00\x04pass";

    /// A CONNECT body up to and including keep alive, then `payload`.
    fn body(flags: u8, payload: &[u8]) -> Vec<u8> {
        let mut body = b"\x00\x04MQTT\x04".to_vec();
        body.push(flags);
        body.extend_from_slice(&[0x00, 0x3C]);
        body.extend_from_slice(payload);
        body
    }

    #[test]
    fn exact_bytes_minimal() {
        assert_eq!(
            &round_trip(&Packet::Connect(minimal()))[..],
            b"\x10\x0F\x00\x04MQTT\x04\x02\x00\x3C\x00\x03abc"
        );
    }

    #[test]
    fn exact_bytes_with_will_username_password() {
        assert_eq!(&round_trip(&Packet::Connect(full()))[..], FULL_WIRE);
    }

    #[test]
    fn round_trips_every_combination_of_optional_fields() {
        let wills = [
            None,
            Some(Will {
                topic: s("dead/client"),
                payload: Bytes::from_static(b"gone"),
                qos: QoS::AtMostOnce,
                retain: false,
                properties: Properties::new(),
            }),
            Some(Will {
                topic: s("$SYS/x"),
                payload: Bytes::from_static(&[0, 0xFF, 0x80]),
                qos: QoS::AtLeastOnce,
                retain: true,
                properties: Properties::new(),
            }),
            Some(Will {
                topic: s("w"),
                payload: Bytes::new(),
                qos: QoS::ExactlyOnce,
                retain: false,
                properties: Properties::new(),
            }),
        ];
        let credentials = [
            (None, None),
            (Some(s("user")), None),
            (Some(s("")), Some(Bytes::new())),
            (Some(s("ünïcode")), Some(Bytes::from_static(&[0, 0xFF, 0xC0, 0x80]))),
        ];
        let mut count = 0;
        for will in &wills {
            for (username, password) in &credentials {
                for (clean_session, keep_alive, client_id) in [(true, 0, ""), (false, 65_535, "client-1")] {
                    round_trip(&Packet::Connect(Connect {
                        version: Version::V311,
                        clean_session,
                        keep_alive,
                        client_id: s(client_id),
                        will: will.clone(),
                        username: username.clone(),
                        password: password.clone(),
                        properties: Properties::new(),
                    }));
                    count += 1;
                }
            }
        }
        assert_eq!(count, 32);
    }

    #[test]
    fn password_is_a_zero_copy_slice() {
        let mut buf = BytesMut::from(FULL_WIRE);
        let start = buf.as_ptr() as usize;
        let Some(Packet::Connect(c)) = crate::codec::decode(&mut buf, 1024, Version::V311).unwrap() else {
            panic!("not a connect");
        };
        let password = c.password.unwrap();
        assert_eq!(password.as_ptr() as usize, start + FULL_WIRE.len() - 4);
    }

    #[test]
    fn wrong_protocol_name_is_rejected() {
        // 3.1's "MQIsdp" with level 3 is refused: this codec is 3.1.1 only.
        let mut mqisdp = b"\x00\x06MQIsdp\x03\x02\x00\x3C".to_vec();
        mqisdp.extend_from_slice(b"\x00\x01a");
        assert_eq!(decode_one(&frame(0x10, &mqisdp)), Err(CodecError::InvalidProtocolName));
        let mut lower = body(0x02, b"\x00\x01a");
        lower[2..6].copy_from_slice(b"mqtt");
        assert_eq!(decode_one(&frame(0x10, &lower)), Err(CodecError::InvalidProtocolName));
        let mut not_utf8 = body(0x02, b"\x00\x01a");
        not_utf8[2..6].copy_from_slice(b"\xFF\xFF\xFF\xFF");
        assert_eq!(
            decode_one(&frame(0x10, &not_utf8)),
            Err(CodecError::InvalidProtocolName)
        );
    }

    #[test]
    fn other_protocol_levels_are_rejected() {
        for level in [3, 6, 0, 255] {
            let mut b = body(0x02, b"\x00\x01a");
            b[6] = level;
            assert_eq!(
                decode_one(&frame(0x10, &b)),
                Err(CodecError::UnsupportedProtocolLevel(level))
            );
        }
    }

    #[test]
    fn mqtt5_connect_with_properties_and_will_properties() {
        let mut c = full();
        c.version = Version::V5;
        c.properties.push_int(PropertyId::SessionExpiryInterval, 3600).unwrap();
        c.properties.push_int(PropertyId::ReceiveMaximum, 100).unwrap();
        let will = c.will.as_mut().unwrap();
        will.properties.push_int(PropertyId::WillDelayInterval, 5).unwrap();
        let wire = round_trip(&Packet::Connect(c.clone()));
        // Read back whatever version the reader expects: the CONNECT says its own.
        assert_eq!(decode_in(&wire, V5), Ok(Packet::Connect(c.clone())));
        assert_eq!(&wire[2..13], b"\x00\x04MQTT\x05\xCE\x00\x0A\x08");
        c.properties.push_int(PropertyId::TopicAlias, 1).unwrap();
        assert_eq!(
            encode_err(&Packet::Connect(c)),
            CodecError::PropertyNotAllowed {
                id: 0x23,
                packet_type: 1
            }
        );
        // MQTT 5 lets a password go without a user name (section 3.1.2.9).
        let c = Connect {
            version: Version::V5,
            password: Some(Bytes::from_static(b"token")),
            ..minimal()
        };
        round_trip(&Packet::Connect(c));
    }

    #[test]
    fn mqtt311_connect_carries_no_properties() {
        let mut c = minimal();
        c.properties.push_int(PropertyId::SessionExpiryInterval, 1).unwrap();
        assert_eq!(encode_err(&Packet::Connect(c)), CodecError::NotInMqtt311("properties"));
    }

    #[test]
    fn invalid_connect_flags_are_rejected() {
        let cases: &[(u8, &[u8])] = &[
            (0x03, b"\x00\x01a"),                  // reserved bit
            (0x0A, b"\x00\x01a"),                  // will QoS 1 without will flag
            (0x12, b"\x00\x01a"),                  // will QoS 2 without will flag
            (0x22, b"\x00\x01a"),                  // will retain without will flag
            (0x42, b"\x00\x01a\x00\x01p"),         // password without user name
            (0x07, b"\x00\x01a\x00\x01t\x00\x00"), // reserved bit next to a valid will
        ];
        for &(flags, payload) in cases {
            assert_eq!(
                decode_one(&frame(0x10, &body(flags, payload))),
                Err(CodecError::InvalidConnectFlags(flags)),
                "flags {flags:#04x}"
            );
        }
    }

    #[test]
    fn password_without_username_is_not_encoded() {
        let connect = Connect {
            password: Some(Bytes::from_static(b"p")),
            ..minimal()
        };
        assert_eq!(
            encode_err(&Packet::Connect(connect)),
            CodecError::InvalidConnectFlags(PASSWORD | CLEAN_SESSION)
        );
    }

    #[test]
    fn will_qos_3_is_invalid_qos() {
        assert_eq!(
            decode_one(&frame(0x10, &body(0x1E, b"\x00\x01a\x00\x01t\x00\x00"))),
            Err(CodecError::InvalidQoS(3))
        );
    }

    #[test]
    fn will_topic_must_be_a_valid_name() {
        assert_eq!(
            decode_one(&frame(0x10, &body(0x06, b"\x00\x01a\x00\x03a/#\x00\x00"))),
            Err(CodecError::Topic(TopicError::WildcardInName))
        );
        assert_eq!(
            decode_one(&frame(0x10, &body(0x06, b"\x00\x01a\x00\x00\x00\x00"))),
            Err(CodecError::Topic(TopicError::Empty))
        );
        let mut connect = full();
        connect.will.as_mut().unwrap().topic = s("a/+");
        assert_eq!(
            encode_err(&Packet::Connect(connect)),
            CodecError::Topic(TopicError::WildcardInName)
        );
    }

    #[test]
    fn strings_are_checked() {
        assert_eq!(
            decode_one(&frame(0x10, &body(0x02, b"\x00\x02\xC0\x80"))),
            Err(CodecError::InvalidUtf8)
        );
        assert_eq!(
            decode_one(&frame(0x10, &body(0x82, b"\x00\x01a\x00\x02u\x00"))),
            Err(CodecError::NulInString)
        );
    }

    #[test]
    fn oversized_binary_fields_are_not_encoded() {
        let mut connect = full();
        connect.will.as_mut().unwrap().payload = Bytes::from(vec![0; 65_536]);
        assert_eq!(encode_err(&Packet::Connect(connect)), CodecError::BinaryTooLong(65_536));
        let connect = Connect {
            password: Some(Bytes::from(vec![0; 70_000])),
            ..full()
        };
        assert_eq!(encode_err(&Packet::Connect(connect)), CodecError::BinaryTooLong(70_000));
        let connect = Connect {
            password: Some(Bytes::from(vec![0; 65_535])),
            ..full()
        };
        round_trip(&Packet::Connect(connect));
    }

    #[test]
    fn every_prefix_of_a_full_body_is_truncated() {
        let full_body = &FULL_WIRE[2..];
        for len in 0..full_body.len() {
            assert_eq!(
                decode_one(&frame(0x10, &full_body[..len])),
                Err(CodecError::Truncated),
                "body cut at {len}"
            );
        }
    }

    #[test]
    fn extra_byte_after_the_payload_is_trailing() {
        let mut b = FULL_WIRE[2..].to_vec();
        b.push(0);
        assert_eq!(decode_one(&frame(0x10, &b)), Err(CodecError::TrailingBytes));
    }
}
