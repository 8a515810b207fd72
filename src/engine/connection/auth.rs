//! Enhanced authentication (MQTT 5 section 4.12): the AUTH exchanges of one connection, during
//! the connect and after it (re-authentication), each challenge answered by the application's
//! auth handler on the thread that runs its callbacks.
//!
//! The broker continues an exchange with AUTH 0x18 (Continue authentication), which the handler
//! answers, and ends it with CONNACK (during the connect), AUTH 0x00 (Success, after a
//! re-authentication) or a refusal. The client starts a re-authentication with AUTH 0x19. The
//! specification describes no re-authentication the broker starts, but a broker's AUTH 0x18 on a
//! live connection is answered all the same, as a re-authentication it asked for.
use std::future::pending;

use tokio::sync::oneshot;

use crate::codec::{Auth, MqttStr, Packet, Properties, PropertyId, ReasonCode};
use crate::engine::dispatch::{AuthAnswer, AuthChallenge, Event};
use crate::engine::{Error, Options, Token};

/// What an AUTH naming another method than the CONNECT's is (MQTT-4.12.0-5).
const OTHER_METHOD: &str = "AUTH with another Authentication Method than the CONNECT's";

/// The authentication state of one connection.
pub(super) struct Authenticator {
    /// The CONNECT's Authentication Method; None without enhanced authentication, when the
    /// broker must send no AUTH at all.
    method: Option<MqttStr>,
    exchange: Option<Exchange>,
}

/// An exchange under way.
#[derive(Default)]
struct Exchange {
    /// The re-authentication the client started (`Client::reauthenticate`); None for the connect
    /// and for an exchange the broker started.
    token: Option<Token>,
    /// The handler's answer to the broker's last challenge, until it comes.
    answer: Option<oneshot::Receiver<AuthAnswer>>,
}

impl Authenticator {
    pub(super) fn new(options: &Options) -> Authenticator {
        Authenticator {
            method: options.authentication_method(),
            exchange: None,
        }
    }

    /// The broker's AUTH 0x18 (during the connect when `connecting`): the event that asks the
    /// handler for the next step. Any other AUTH, one with another method, or one before the
    /// client answered the last, is a protocol error.
    pub(super) fn challenge(&mut self, auth: Auth, connecting: bool) -> Result<Event, Error> {
        let method = self.expect_method()?;
        if auth.reason != ReasonCode::CONTINUE_AUTHENTICATION {
            return Err(Error::UnexpectedPacket(match connecting {
                true => "AUTH other than Continue authentication before CONNACK",
                false => "AUTH Re-authenticate, which only a client sends",
            }));
        }
        if auth.properties.str(PropertyId::AuthenticationMethod).as_ref() != Some(&method) {
            return Err(Error::UnexpectedPacket(OTHER_METHOD));
        }
        let exchange = self.exchange.get_or_insert_with(Exchange::default);
        if exchange.answer.is_some() {
            return Err(Error::UnexpectedPacket("AUTH before the client answered the last one"));
        }
        let (reply, answer) = oneshot::channel();
        exchange.answer = Some(answer);
        let challenge = AuthChallenge {
            method,
            data: auth.properties.binary(PropertyId::AuthenticationData),
            properties: auth.properties,
            connecting,
        };
        Ok(Event::Auth(challenge, reply))
    }

    /// The broker's AUTH 0x00, which ends a re-authentication: its token (when the client
    /// started it) and the AUTH's properties. Without one awaiting it, a protocol error.
    pub(super) fn success(&mut self, auth: Auth) -> Result<(Option<Token>, Properties), Error> {
        let method = self.expect_method()?;
        // A success without properties may leave the method out (section 3.15.2.1).
        if auth
            .properties
            .str(PropertyId::AuthenticationMethod)
            .is_some_and(|m| m != method)
        {
            return Err(Error::UnexpectedPacket(OTHER_METHOD));
        }
        match self.exchange.take() {
            Some(Exchange { token, answer: None }) => Ok((token, auth.properties)),
            unanswered => {
                self.exchange = unanswered;
                Err(Error::UnexpectedPacket(
                    "AUTH Success with no re-authentication awaiting one",
                ))
            }
        }
    }

    /// A successful CONNACK ends the connect's exchange. One naming another method is a protocol
    /// error; one naming none is taken, as some brokers leave it out.
    pub(super) fn connected(&mut self, connack: &Properties) -> Result<(), Error> {
        self.exchange = None;
        match (connack.str(PropertyId::AuthenticationMethod), &self.method) {
            (Some(got), Some(method)) if got != *method => Err(Error::UnexpectedPacket(
                "CONNACK with another Authentication Method than the CONNECT's",
            )),
            _ => Ok(()),
        }
    }

    /// Waits for the handler's answer to the broker's challenge, and gives the AUTH that carries
    /// it, or the error that ends the exchange. Never ready while no answer is awaited.
    pub(super) async fn answered(&mut self) -> Result<Packet, Error> {
        let Some(answer) = self.exchange.as_mut().and_then(|e| e.answer.as_mut()) else {
            return pending().await;
        };
        // The handler's side is dropped unanswered only when the callbacks are gone.
        let answer = answer.await.unwrap_or_else(|_| Err("the client is closing".into()));
        if let Some(exchange) = self.exchange.as_mut() {
            exchange.answer = None;
        }
        self.packet(ReasonCode::CONTINUE_AUTHENTICATION, answer.map_err(Error::AuthFailed)?)
    }

    /// Starts a re-authentication the application asked for: the AUTH 0x19 to send. Refused
    /// while another exchange is under way.
    pub(super) fn start(&mut self, token: Token, properties: Properties) -> Result<Packet, Error> {
        if self.exchange.is_some() {
            return Err(Error::InvalidArgument(
                "an authentication exchange is under way: wait for it to end",
            ));
        }
        let packet = self.packet(ReasonCode::REAUTHENTICATE, properties)?;
        self.exchange = Some(Exchange {
            token: Some(token),
            answer: None,
        });
        Ok(packet)
    }

    /// The connection ended: the token of the re-authentication under way, if the client started one.
    pub(super) fn end(&mut self) -> Option<Token> {
        self.exchange.take().and_then(|e| e.token)
    }

    /// An AUTH with `reason` and `properties`, under the CONNECT's method (MQTT-4.12.0-5).
    fn packet(&self, reason: ReasonCode, mut properties: Properties) -> Result<Packet, Error> {
        let method = self.method.as_ref().ok_or(Error::InvalidArgument(
            "re-authentication needs an Authentication Method in the CONNECT properties",
        ))?;
        let mut all = Properties::new();
        all.push_str(PropertyId::AuthenticationMethod, method.as_str())?;
        properties.remove(PropertyId::AuthenticationMethod);
        for p in properties.iter() {
            all.push(p);
        }
        Ok(Packet::Auth(Auth {
            reason,
            properties: all,
        }))
    }

    /// The method an AUTH from the broker must name; none set means the broker may send no AUTH.
    fn expect_method(&self) -> Result<MqttStr, Error> {
        self.method
            .clone()
            .ok_or(Error::UnexpectedPacket("AUTH, though no authentication method was set"))
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;

    fn with_method(method: &str) -> Authenticator {
        let mut options = Options::default();
        options
            .connect_properties
            .push_str(PropertyId::AuthenticationMethod, method)
            .unwrap();
        Authenticator::new(&options)
    }

    fn auth(reason: ReasonCode, method: Option<&str>, data: &'static [u8]) -> Auth {
        let mut properties = Properties::new();
        if let Some(m) = method {
            properties.push_str(PropertyId::AuthenticationMethod, m).unwrap();
        }
        if !data.is_empty() {
            properties
                .push_binary(PropertyId::AuthenticationData, Bytes::from_static(data))
                .unwrap();
        }
        Auth { reason, properties }
    }

    /// The challenge an event carries, and the handler's side of its answer.
    fn asked(event: Event) -> (AuthChallenge, oneshot::Sender<AuthAnswer>) {
        match event {
            Event::Auth(challenge, reply) => (challenge, reply),
            other => panic!("not an AUTH event: {other:?}"),
        }
    }

    fn answer_now(a: &mut Authenticator) -> Result<Packet, Error> {
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        rt.block_on(a.answered())
    }

    fn data(reply: &[u8]) -> Properties {
        let mut p = Properties::new();
        p.push_binary(PropertyId::AuthenticationData, Bytes::copy_from_slice(reply))
            .unwrap();
        p
    }

    #[test]
    fn a_challenge_goes_to_the_handler_and_its_answer_back_under_the_method() {
        let mut a = with_method("SCRAM");
        let event = a
            .challenge(
                auth(ReasonCode::CONTINUE_AUTHENTICATION, Some("SCRAM"), b"server-first"),
                true,
            )
            .unwrap();
        let (challenge, reply) = asked(event);
        assert_eq!(challenge.method.as_str(), "SCRAM");
        assert_eq!(challenge.data.as_deref(), Some(&b"server-first"[..]));
        assert!(challenge.connecting);
        reply.send(Ok(data(b"client-final"))).unwrap();
        let Packet::Auth(sent) = answer_now(&mut a).unwrap() else {
            panic!("not an AUTH")
        };
        assert_eq!(sent.reason, ReasonCode::CONTINUE_AUTHENTICATION);
        assert_eq!(
            sent.properties.str(PropertyId::AuthenticationMethod).unwrap().as_str(),
            "SCRAM"
        );
        assert_eq!(
            sent.properties.binary(PropertyId::AuthenticationData).as_deref(),
            Some(&b"client-final"[..])
        );
    }

    #[test]
    fn a_refusing_handler_ends_the_exchange() {
        let mut a = with_method("M");
        let event = a
            .challenge(auth(ReasonCode::CONTINUE_AUTHENTICATION, Some("M"), b""), false)
            .unwrap();
        let (challenge, reply) = asked(event);
        assert_eq!(challenge.data, None);
        reply.send(Err("no".into())).unwrap();
        assert_eq!(answer_now(&mut a), Err(Error::AuthFailed("no".into())));
        // A handler gone without answering (the client closing) ends it too.
        let event = a
            .challenge(auth(ReasonCode::CONTINUE_AUTHENTICATION, Some("M"), b""), false)
            .unwrap();
        drop(event);
        assert!(matches!(answer_now(&mut a), Err(Error::AuthFailed(_))));
    }

    #[test]
    fn what_breaks_the_exchange_is_a_protocol_error() {
        let cases: [(Option<&str>, Auth, bool); 6] = [
            (None, auth(ReasonCode::CONTINUE_AUTHENTICATION, Some("M"), b""), false),
            (
                Some("M"),
                auth(ReasonCode::CONTINUE_AUTHENTICATION, Some("N"), b""),
                true,
            ),
            (Some("M"), auth(ReasonCode::CONTINUE_AUTHENTICATION, None, b""), false),
            (Some("M"), auth(ReasonCode::REAUTHENTICATE, Some("M"), b""), false),
            (Some("M"), auth(ReasonCode::SUCCESS, Some("M"), b""), true),
            (Some("M"), auth(ReasonCode::SUCCESS, Some("M"), b""), false),
        ];
        for (method, packet, connecting) in cases {
            let mut a = method.map_or_else(|| Authenticator::new(&Options::default()), with_method);
            let what = format!("{packet:?} connecting {connecting}");
            let got = match packet.reason {
                ReasonCode::SUCCESS if !connecting => a.success(packet).map(drop),
                _ => a.challenge(packet, connecting).map(drop),
            };
            assert!(matches!(got, Err(Error::UnexpectedPacket(_))), "{what}: {got:?}");
        }
        // A second challenge before the client answered the first.
        let mut a = with_method("M");
        let _pending = a
            .challenge(auth(ReasonCode::CONTINUE_AUTHENTICATION, Some("M"), b""), false)
            .unwrap();
        let again = a.challenge(auth(ReasonCode::CONTINUE_AUTHENTICATION, Some("M"), b""), false);
        assert!(matches!(again, Err(Error::UnexpectedPacket(_))));
        // Nor may the broker end it with a success then.
        let early = a.success(auth(ReasonCode::SUCCESS, None, b""));
        assert!(matches!(early, Err(Error::UnexpectedPacket(_))));
        assert!(matches!(
            with_method("M").connected(&auth(ReasonCode::SUCCESS, Some("N"), b"").properties),
            Err(Error::UnexpectedPacket(_))
        ));
        assert_eq!(with_method("M").connected(&Properties::new()), Ok(()));
    }

    #[test]
    fn a_reauthentication_the_client_starts_completes_its_token_on_success() {
        let mut a = with_method("M");
        let Packet::Auth(sent) = a.start(7, data(b"token-2")).unwrap() else {
            panic!("not an AUTH")
        };
        assert_eq!(sent.reason, ReasonCode::REAUTHENTICATE);
        assert_eq!(
            sent.properties.str(PropertyId::AuthenticationMethod).unwrap().as_str(),
            "M"
        );
        assert!(matches!(a.start(8, Properties::new()), Err(Error::InvalidArgument(_))));
        // The broker asks for more, the handler answers, and the broker is satisfied.
        let (_, reply) = asked(
            a.challenge(auth(ReasonCode::CONTINUE_AUTHENTICATION, Some("M"), b"more"), false)
                .unwrap(),
        );
        reply.send(Ok(data(b"here"))).unwrap();
        answer_now(&mut a).unwrap();
        let done = a.success(auth(ReasonCode::SUCCESS, Some("M"), b"final")).unwrap();
        assert_eq!(done.0, Some(7));
        assert_eq!(
            done.1.binary(PropertyId::AuthenticationData).as_deref(),
            Some(&b"final"[..])
        );
        assert_eq!(a.end(), None, "nothing is left under way");
        // A connection that ends first takes the token with it.
        a.start(9, Properties::new()).unwrap();
        assert_eq!(a.end(), Some(9));
    }

    #[test]
    fn an_exchange_the_broker_starts_ends_with_its_success() {
        let mut a = with_method("M");
        let (challenge, reply) = asked(
            a.challenge(auth(ReasonCode::CONTINUE_AUTHENTICATION, Some("M"), b"again?"), false)
                .unwrap(),
        );
        assert!(!challenge.connecting);
        reply.send(Ok(Properties::new())).unwrap();
        let Packet::Auth(sent) = answer_now(&mut a).unwrap() else {
            panic!("not an AUTH")
        };
        assert_eq!(sent.properties.get(PropertyId::AuthenticationData), None);
        // A success without properties may leave the method out.
        assert_eq!(a.success(auth(ReasonCode::SUCCESS, None, b"")).unwrap().0, None);
        assert_eq!(a.end(), None);
    }
}
