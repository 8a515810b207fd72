//! Subscriptions a real mosquitto refuses: the token fails with the SUBACK's code for every
//! filter, MQTT 5's 0x87 (Not authorized) or 3.1.1's 0x80 for the refused one, the granted QoS
//! for the others, which keep working.
//!
//! mosquitto's `acl_file` never refuses a subscription (mosquitto 2.0: its ACLs are checked when a
//! message is delivered, so a denied filter is granted and its messages withheld; the first test
//! pins that down). What refuses one is the dynamic security plugin shipped with mosquitto 2,
//! whose `subscribePattern` ACLs are checked on SUBSCRIBE.
mod common;

use std::sync::mpsc;
use std::time::Duration;

use bytes::Bytes;
use mqttclient::codec::{MqttStr, Publish, QoS, Version};
use mqttclient::engine::{Address, Client, Error, Handler, Options, TokenResult};
use mqttclient::ffi::mqttc_status;

use common::Broker;
use common::engine::{T, connect, wait};

fn client(broker: &Broker, version: Version, id: &str) -> Client {
    let options = Options {
        version,
        client_id: id.into(),
        auto_reconnect: false,
        ..Options::default()
    };
    let client = Client::new(vec![Address::tcp("127.0.0.1", broker.port)], options).unwrap();
    assert_eq!(connect(&client).map(|o| o.codes), Ok(vec![0]));
    client
}

fn filter(s: &str) -> MqttStr {
    MqttStr::new(s).unwrap()
}

/// One SUBSCRIBE with `open` and `secret` at QoS 1: its result, and what each filter's handler
/// receives.
fn subscribe_both(
    client: &Client,
    open: &str,
    secret: &str,
) -> (TokenResult, mpsc::Receiver<Publish>, mpsc::Receiver<Publish>) {
    let (open_tx, open_rx) = mpsc::channel();
    let (secret_tx, secret_rx) = mpsc::channel();
    let forward = |tx: mpsc::Sender<Publish>| {
        Handler::Call(Box::new(move |p: &Publish| {
            let _ = tx.send(p.clone());
        }))
    };
    let token = client
        .subscribe(vec![
            (filter(open), QoS::AtLeastOnce, forward(open_tx)),
            (filter(secret), QoS::AtLeastOnce, forward(secret_tx)),
        ])
        .unwrap();
    (wait(client, token), open_rx, secret_rx)
}

/// Publishes to `secret` then to `open` (QoS 1, so mosquitto has both before this returns) and
/// returns what `open`'s subscriber got; whatever `secret`'s would get is there by then too.
fn publish_secret_then_open(client: &Client, secret: &str, open: &str, open_rx: &mpsc::Receiver<Publish>) -> Publish {
    for topic in [secret, open] {
        let token = client
            .publish(filter(topic), Bytes::from_static(b"x"), QoS::AtLeastOnce, false)
            .unwrap();
        assert!(wait(client, token).is_ok(), "publish to {topic}");
    }
    open_rx.recv_timeout(T).expect("the granted filter's message")
}

#[test]
fn mosquittos_acl_file_grants_a_denied_subscription_and_withholds_its_messages() {
    // Anonymous clients (the first section of an ACL file) may publish to acl/secret/# but not
    // read it.
    let acl = "topic readwrite acl/open/#\ntopic write acl/secret/#\n";
    let broker = Broker::start_with_files("acl_file {dir}/acl\n", &[("acl", acl)]);
    for version in [Version::V5, Version::V311] {
        let c = client(&broker, version, &format!("acl-file-{version:?}"));
        let (result, open_rx, secret_rx) = subscribe_both(&c, "acl/open/x", "acl/secret/x");
        // Not refused: mosquitto grants QoS 1 to both.
        assert_eq!(result.map(|o| o.codes), Ok(vec![1, 1]), "{version:?}");
        let got = publish_secret_then_open(&c, "acl/secret/x", "acl/open/x", &open_rx);
        assert_eq!(got.topic.as_str(), "acl/open/x");
        assert!(
            secret_rx.recv_timeout(Duration::from_millis(200)).is_err(),
            "{version:?}: the ACL withholds what the granted subscription matches"
        );
    }
}

/// A dynamic security configuration that lets anonymous clients do everything but subscribe to
/// acl/secret/#.
const DYNSEC: &str = r#"{
  "defaultACLAccess": {"publishClientSend": true, "publishClientReceive": true, "subscribe": true, "unsubscribe": true},
  "clients": [],
  "groups": [{"groupname": "anonymous", "roles": [{"rolename": "no-secrets"}], "clients": []}],
  "roles": [{"rolename": "no-secrets", "acls": [
    {"acltype": "subscribePattern", "topic": "acl/secret/#", "priority": 0, "allow": false}
  ]}],
  "anonymousGroup": "anonymous"
}
"#;

#[test]
fn a_subscription_mosquitto_refuses_fails_the_token_with_0x87_in_mqtt5_and_0x80_in_3_1_1() {
    let plugin = common::dynamic_security_plugin();
    let broker = Broker::start_with_files(
        &format!(
            "plugin {}\nplugin_opt_config_file {{dir}}/dynsec.json\n",
            plugin.display()
        ),
        &[("dynsec.json", DYNSEC)],
    );
    for (version, refused) in [(Version::V5, 0x87), (Version::V311, 0x80)] {
        let c = client(&broker, version, &format!("dynsec-{version:?}"));
        let (result, open_rx, secret_rx) = subscribe_both(&c, "acl/open/y", "acl/secret/y");
        let err = result.unwrap_err();
        // The allowed filter's granted QoS, the refused one's code, in request order.
        assert_eq!(
            err,
            Error::SubscribeRefused {
                codes: vec![1, refused],
                properties: Default::default()
            },
            "{version:?}"
        );
        assert_eq!(err.reason_codes(), Some(vec![1, refused]));
        assert_eq!(mqttc_status::from(&err), mqttc_status::MQTTC_ERR_SUBSCRIBE_REFUSED);
        // The granted filter works; the refused one delivers nothing (mosquitto has no such
        // subscription, and the client dropped its handler).
        let got = publish_secret_then_open(&c, "acl/secret/y", "acl/open/y", &open_rx);
        assert_eq!(got.topic.as_str(), "acl/open/y");
        assert!(secret_rx.recv_timeout(Duration::from_millis(200)).is_err());
    }
}
