//! The broker's side of MQTT 5 enhanced authentication, scripted, for the programs that run it
//! through the C API (tests/c/auth.c) and the C++ API (tests/cpp/auth.cpp). Each program takes
//! the steps below in the same order and prints one "ok ..." line per step (6 in all).
use super::fake::{FakeBroker, TIMEOUT, publish};
use mqttclient::codec::{Auth, ConnAck, Disconnect, Packet, Properties, PropertyId, QoS, ReasonCode};

/// Plays the broker for one run of a program: a connect in three steps (the CONNECT carries the
/// method "SCRAM-TEST" and "client-first"; each challenge is answered with "re:" and its data), a
/// re-authentication the broker starts (a message on sync/reauthenticated follows its success),
/// one the client starts with "token-2", an AUTH with another method (the client closes with
/// Protocol Error), refusals (CONNACK 0x87 after a challenge, 0x8C at once), and a connect whose
/// challenge "fail-me" the client's callback refuses (DISCONNECT 0x80).
pub fn play_broker(broker: &FakeBroker) {
    const METHOD: &str = "SCRAM-TEST";
    let properties = |method: &str, data: &[u8]| {
        let mut p = Properties::new();
        p.push_str(PropertyId::AuthenticationMethod, method).unwrap();
        if !data.is_empty() {
            p.push_binary(PropertyId::AuthenticationData, data.to_vec().into())
                .unwrap();
        }
        p
    };
    let auth = |reason: ReasonCode, method: &str, data: &[u8]| {
        Packet::Auth(Auth {
            reason,
            properties: properties(method, data),
        })
    };
    let challenge = |data: &str| auth(ReasonCode::CONTINUE_AUTHENTICATION, METHOD, data.as_bytes());
    let answer = |data: &str| challenge(&format!("re:{data}"));
    let goodbye = |reason| {
        Packet::Disconnect(Disconnect {
            reason,
            properties: Properties::new(),
        })
    };

    // A connect in three steps, the CONNECT carrying the method and the first data.
    let mut conn = broker.accept();
    let connect = conn.expect_connect();
    assert_eq!(
        connect
            .properties
            .str(PropertyId::AuthenticationMethod)
            .as_ref()
            .map(|m| m.as_str()),
        Some(METHOD)
    );
    assert_eq!(
        connect.properties.binary(PropertyId::AuthenticationData).as_deref(),
        Some(&b"client-first"[..])
    );
    for step in ["step-1", "step-2"] {
        conn.send(challenge(step));
        conn.expect_packet(&answer(step));
    }
    conn.send(Packet::ConnAck(ConnAck {
        properties: properties(METHOD, b"welcome"),
        ..ConnAck::accepted(false)
    }));
    // The broker re-authenticates; the message behind its success tells the program it ended.
    conn.grant_subscribe();
    conn.send(challenge("again"));
    conn.expect_packet(&answer("again"));
    conn.send(auth(ReasonCode::SUCCESS, METHOD, b""));
    conn.send(Packet::Publish(publish(
        "sync/reauthenticated",
        QoS::AtMostOnce,
        0,
        b"",
    )));
    // The client re-authenticates.
    conn.expect_packet(&auth(ReasonCode::REAUTHENTICATE, METHOD, b"token-2"));
    conn.send(challenge("prove"));
    conn.expect_packet(&answer("prove"));
    conn.send(auth(ReasonCode::SUCCESS, METHOD, b"renewed"));
    // Another method: the client says Protocol Error and closes.
    conn.send(auth(ReasonCode::CONTINUE_AUTHENTICATION, "OTHER", b"x"));
    conn.expect_packet(&goodbye(ReasonCode::PROTOCOL_ERROR));
    conn.expect_eof(TIMEOUT);
    // Refusals: after a challenge, and at once.
    for (code, challenged) in [
        (ReasonCode::NOT_AUTHORIZED, true),
        (ReasonCode::BAD_AUTHENTICATION_METHOD, false),
    ] {
        let mut conn = broker.accept();
        conn.expect_connect();
        if challenged {
            conn.send(challenge("step-1"));
            conn.expect_packet(&answer("step-1"));
        }
        conn.connack(code);
        conn.expect_eof(TIMEOUT);
    }
    // The program's callback ends the exchange: DISCONNECT 0x80, then the connection closes.
    let mut conn = broker.accept();
    conn.expect_connect();
    conn.send(challenge("fail-me"));
    conn.expect_packet(&goodbye(ReasonCode::UNSPECIFIED_ERROR));
    conn.expect_eof(TIMEOUT);
}
