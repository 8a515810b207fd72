//! What the broker of the current connection allows and has set up (MQTT 5).
use crate::codec::{MqttStr, Properties, PropertyId, Publish, Version};
use crate::engine::Error;

/// MQTT 5 state of one connection, from the CONNACK on; all of it lapses with the connection.
#[derive(Default)]
pub(super) struct Peer {
    /// The broker's Maximum Packet Size: larger packets must not be sent (MQTT-3.2.2-15).
    pub(super) max_packet_size: Option<usize>,
    /// Inbound topic aliases the broker has set: index alias - 1. Grown as the broker sets them,
    /// up to our Topic Alias Maximum: a client whose broker uses none holds no table.
    aliases: Vec<Option<MqttStr>>,
    /// Our Topic Alias Maximum.
    alias_maximum: u16,
    /// The broker takes Subscription Identifiers (its CONNACK says so unless it says 0).
    pub(super) subscription_ids: bool,
}

/// What an inbound alias of 0 or above our Topic Alias Maximum is (MQTT 5 section 3.3.2.3.4 names
/// its own reason code for it, 0x94 Topic Alias invalid).
pub(super) const ALIAS_ABOVE_MAXIMUM: &str = "PUBLISH with a topic alias above our Topic Alias Maximum";

impl Peer {
    pub(super) fn new(connack: &Properties, topic_alias_maximum: u16) -> Peer {
        Peer {
            max_packet_size: connack.int(PropertyId::MaximumPacketSize).map(|n| n as usize),
            aliases: Vec::new(),
            alias_maximum: topic_alias_maximum,
            subscription_ids: connack.int(PropertyId::SubscriptionIdentifierAvailable) != Some(0),
        }
    }

    /// A publish larger than the broker's Maximum Packet Size must not be sent: the error that
    /// fails its token instead.
    pub(super) fn check_size(&self, publish: &Publish, version: Version) -> Result<(), Error> {
        match self.max_packet_size {
            Some(max) if publish.encoded_len(version) > max => Err(Error::PacketTooLarge {
                size: publish.encoded_len(version),
                max,
            }),
            _ => Ok(()),
        }
    }

    /// Gives an inbound PUBLISH its whole topic: a topic with an alias sets the alias, an empty
    /// topic with one is replaced by what the alias stands for (MQTT 5 section 3.3.2.3.4). An
    /// alias of 0 or above our maximum, or one never set, is a protocol error (0x94, 0x82).
    pub(super) fn resolve(&mut self, publish: &mut Publish) -> Result<(), Error> {
        let Some(alias) = publish.properties.int(PropertyId::TopicAlias) else {
            return Ok(());
        };
        let index = (alias as usize)
            .checked_sub(1)
            .filter(|&i| i < self.alias_maximum.into())
            .ok_or(Error::UnexpectedPacket(ALIAS_ABOVE_MAXIMUM))?;
        if publish.topic.is_empty() {
            publish.topic = self
                .aliases
                .get(index)
                .cloned()
                .flatten()
                .ok_or(Error::UnexpectedPacket("PUBLISH with a topic alias that was never set"))?;
        } else {
            if index >= self.aliases.len() {
                self.aliases.resize(index + 1, None);
            }
            self.aliases[index] = Some(publish.topic.clone());
        }
        Ok(())
    }
}
