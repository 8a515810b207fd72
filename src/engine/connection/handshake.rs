//! Opening a connection (CONNECT, CONNACK) and closing one on the broker's fault (DISCONNECT).
use std::os::fd::RawFd;
use std::pin::Pin;
use std::task::Poll;
use std::time::Duration;

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt, ReadBuf};

use super::Ctx;
use super::auth::Authenticator;
use super::peer::ALIAS_ABOVE_MAXIMUM;
use crate::codec::{self, CodecError, Disconnect, Packet, Properties, PropertyId, ReasonCode, Version};
use crate::engine::timer::timeout;
use crate::engine::transport::{self, Reader, Writer};
use crate::engine::write_queue::WriteQueue;
use crate::engine::{Address, Error, Options};

/// The most room a read is given beyond the packet being read: a connection that receives a
/// stream gets this much, so each read takes many messages.
const READ_CHUNK: usize = 64 * 1024;
/// The room a connection's reads start with: an idle client of a fleet of thousands holds this,
/// not a chunk (see [`ReadRoom`]).
const READ_FIRST: usize = 1024;
/// How long a connection reads nothing before it lets go of its read buffer (see
/// [`ReadRoom::release`]): long against the gaps within a burst, so that a busy connection makes
/// its buffer at most once per this, short against those of occasional messages.
pub(super) const QUIET: Duration = Duration::from_millis(10);
/// How long the DISCONNECT that tells an MQTT 5 broker why the client closes on its protocol error
/// may take to go out (with what was queued before it). A courtesy: the connection closes anyway.
const GOODBYE_WRITE: Duration = Duration::from_millis(200);

/// What the socket writer needs to know of the stream under a connection.
#[derive(Clone, Copy)]
pub(super) struct StreamKind {
    /// See [`transport::Stream::buffered`].
    pub(super) buffered: bool,
    /// See [`transport::Stream::tcp`]: valid while the stream's halves are.
    pub(super) tcp: Option<RawFd>,
    /// See [`transport::Stream::raw`].
    pub(super) raw: Option<RawFd>,
}

/// A connection the broker has accepted, before it is served.
pub(super) struct Link {
    pub(super) reader: Reader,
    pub(super) writer: Writer,
    pub(super) kind: StreamKind,
    pub(super) rbuf: BytesMut,
    pub(super) wbuf: WriteQueue,
    pub(super) session_present: bool,
    /// The CONNACK's properties (MQTT 5): the broker's limits for this connection.
    pub(super) properties: Properties,
    /// See [`transport::Stream::tls_session`].
    pub(super) tls_session: Option<String>,
}

/// Opens the stream, sends CONNECT and waits for CONNACK. Bytes after the CONNACK stay in `rbuf`.
///
/// Boxed: the link passes through the connection task's state on its way to the serve loop,
/// which unpacks it, and would otherwise stay there as a dead copy for the connection's life.
pub(super) async fn handshake(ctx: &Ctx, server: &Address) -> Result<Box<Link>, Error> {
    let stream = transport::connect(
        server,
        ctx.options.tls.as_ref(),
        ctx.options.max_packet_size,
        transport::Route {
            bind: ctx.options.bind_address,
            proxy: ctx.options.proxy.as_ref(),
        },
    )
    .await?;
    let mut link = Box::new(Link {
        reader: stream.reader,
        writer: stream.writer,
        kind: StreamKind {
            buffered: stream.buffered,
            tcp: stream.tcp,
            raw: stream.raw,
        },
        rbuf: BytesMut::with_capacity(READ_FIRST),
        wbuf: WriteQueue::new(ctx.options.version),
        session_present: false,
        properties: Properties::new(),
        tls_session: stream.tls_session,
    });
    let o = &ctx.options;
    // The login as it is now: the application may change it for the next attempt meanwhile.
    let login = ctx.shared.login().clone();
    let connect = codec::Connect {
        version: o.version,
        clean_session: o.clean_session,
        keep_alive: o.keep_alive,
        client_id: codec::MqttStr::new(&o.client_id)?,
        will: login.will,
        username: login.username,
        password: login.password,
        properties: connect_properties(o)?,
    };
    link.wbuf.encode(&Packet::Connect(connect))?;
    link.wbuf.write_all(&mut link.writer).await?;
    link.writer.flush().await?;
    match await_connack(&mut link, ctx).await {
        Ok(()) => Ok(link),
        Err(e) => {
            if let Some(reason) = disconnect_reason(o.version, &e) {
                goodbye(&mut link.writer, &mut link.wbuf, reason).await;
            }
            Err(e)
        }
    }
}

/// Reads up to the CONNACK, answering the broker's authentication challenges on the way (MQTT 5
/// enhanced authentication); a refusal is an error.
async fn await_connack(link: &mut Link, ctx: &Ctx) -> Result<(), Error> {
    let o = &ctx.options;
    let mut auth = Authenticator::new(o);
    loop {
        if let Some(what) = link.rbuf.first().and_then(|&b| before_connack(b)) {
            return Err(Error::UnexpectedPacket(what));
        }
        // Decided before any wait, so that the packet is not kept across it.
        let challenge = match codec::decode(&mut link.rbuf, o.max_packet_size, o.version)? {
            Some(Packet::ConnAck(ack)) if !ack.code.is_error() => {
                auth.connected(&ack.properties)?;
                link.session_present = ack.session_present;
                link.properties = ack.properties;
                return Ok(());
            }
            Some(Packet::ConnAck(ack)) => {
                let text = |id| ack.properties.str(id).map(|s| s.as_str().to_owned());
                return Err(Error::Refused {
                    code: ack.code,
                    reason: text(PropertyId::ReasonString),
                    server_reference: text(PropertyId::ServerReference),
                });
            }
            Some(Packet::Auth(challenge)) => Some(challenge),
            Some(_) => return Err(Error::UnexpectedPacket("packet before CONNACK")),
            None => None,
        };
        if let Some(challenge) = challenge {
            let event = auth.challenge(challenge, true)?;
            // Boxed: enhanced authentication is rare, and inline its wait would be room that every
            // connection attempt of a fleet holds.
            Box::pin(ctx.hand(event)).await;
            continue;
        }
        reserve_read(&mut link.rbuf, o.version, READ_FIRST);
        // The broker may refuse (or close) while the handler is still at work.
        tokio::select! {
            read = link.reader.read_buf(&mut link.rbuf) => {
                if read? == 0 {
                    return Err(Error::ConnectionClosed);
                }
            }
            reply = auth.answered() => {
                link.wbuf.encode(&reply?)?;
                link.wbuf.write_all(&mut link.writer).await?;
                link.writer.flush().await?;
            }
        }
    }
}

/// How much room a connection's reads get: [`READ_FIRST`] at first, doubled up to
/// [`READ_CHUNK`] each time a read fills all it was given. A client that receives little keeps a
/// small buffer; one that receives a stream soon reads a chunk at a time.
pub(super) struct ReadRoom {
    chunk: usize,
    /// The room the last [`reserve`](Self::reserve) left.
    offered: usize,
}

impl ReadRoom {
    pub(super) fn new() -> Self {
        ReadRoom {
            chunk: READ_FIRST,
            offered: 0,
        }
    }

    /// Makes room in `rbuf` for the next read (see [`reserve_read`]); none in a buffer that was
    /// let go of (see [`release`](Self::release)), whose next read goes through the stack.
    pub(super) fn reserve(&mut self, rbuf: &mut BytesMut, version: Version) {
        if rbuf.capacity() == 0 {
            self.offered = READ_FIRST;
            return;
        }
        reserve_read(rbuf, version, self.chunk);
        self.offered = rbuf.capacity() - rbuf.len();
    }

    /// A read took `n` bytes into the room offered.
    pub(super) fn read(&mut self, n: usize) {
        if n >= self.offered {
            self.chunk = (self.chunk * 2).min(READ_CHUNK);
        }
    }

    /// Lets go of `rbuf` when nothing is left in it, so that a connection that is not reading
    /// holds no buffer while it waits (see [`read`]): an idle client of a fleet of thousands.
    pub(super) fn release(rbuf: &mut BytesMut) {
        if rbuf.is_empty() {
            *rbuf = BytesMut::new();
        }
    }
}

/// Reads into `rbuf`'s room or, when it has none (see [`ReadRoom::release`]), into the stack,
/// keeping what arrived: a connection waiting for its next read then holds no buffer.
pub(super) async fn read(reader: &mut Reader, rbuf: &mut BytesMut) -> std::io::Result<usize> {
    if rbuf.capacity() > rbuf.len() {
        return reader.read_buf(rbuf).await;
    }
    std::future::poll_fn(|cx| {
        let mut first = [0; READ_FIRST];
        let mut buf = ReadBuf::new(&mut first);
        std::task::ready!(Pin::new(&mut *reader).poll_read(cx, &mut buf))?;
        // The room of a first read, as the next reads of a burst will want it: allocated once.
        rbuf.reserve(READ_FIRST);
        rbuf.extend_from_slice(buf.filled());
        Poll::Ready(Ok(buf.filled().len()))
    })
    .await
}

/// Makes room in `rbuf` for the next read, whose first bytes are those of the packet being read:
/// at least a quarter of `chunk` (the room a connection's reads get, see [`ReadRoom`]). A packet
/// that fits in [`READ_CHUNK`] gets room for all of it at once, so it takes no more than one
/// reserve. A larger one grows with what has arrived: by as much as the buffer already holds of
/// it (a chunk at first), never beyond its declared size, and only when less than a chunk is
/// free. Memory thus follows the bytes the broker sent, not the length it declared (a 5-byte
/// header declaring 256 MiB costs a chunk), and a large packet that does arrive takes O(log n)
/// reserves, each doubling what is held, rather than one per read.
fn reserve_read(rbuf: &mut BytesMut, version: Version, chunk: usize) {
    let want = codec::pending_packet_len(rbuf, version).map_or(0, |n| n.saturating_sub(rbuf.len()));
    let step = want.min(rbuf.len().max(READ_CHUNK));
    if rbuf.capacity() - rbuf.len() < step.min(READ_CHUNK).max(chunk / 4) {
        rbuf.reserve(step.max(chunk));
    }
}

/// The reason code of the DISCONNECT an MQTT 5 client sends before it closes the connection on
/// `error` (MQTT 5 sections 4.13 and 3.14): for what the broker sent, a packet larger than our
/// maximum (0x95), bytes that are not a valid packet (0x81), a topic alias out of range (0x94) or
/// any other protocol error (0x82); for an authentication exchange the client ends, 0x80
/// (Unspecified error: 0x87 Not authorized is the broker's to send). None for 3.1.1, which has
/// no such DISCONNECT, and for every other end: a dead link (nothing would arrive), a refusal or
/// the broker's own DISCONNECT (the broker closes).
pub(super) fn disconnect_reason(version: Version, error: &Error) -> Option<ReasonCode> {
    if version == Version::V311 {
        return None;
    }
    match error {
        Error::Protocol(CodecError::PacketTooLarge { .. }) => Some(ReasonCode::PACKET_TOO_LARGE),
        Error::Protocol(_) => Some(ReasonCode::MALFORMED_PACKET),
        Error::UnexpectedPacket(what) if *what == ALIAS_ABOVE_MAXIMUM => Some(ReasonCode::TOPIC_ALIAS_INVALID),
        Error::UnexpectedPacket(_) => Some(ReasonCode::PROTOCOL_ERROR),
        Error::AuthFailed(_) => Some(ReasonCode::UNSPECIFIED_ERROR),
        _ => None,
    }
}

/// Writes a DISCONNECT with `reason` after whatever is queued (the broker must get whole packets)
/// and shuts the stream down, for at most [`GOODBYE_WRITE`]: best effort, since the connection is
/// closed whatever happens. Returns whether everything went out.
pub(super) async fn goodbye(writer: &mut Writer, wbuf: &mut WriteQueue, reason: ReasonCode) -> bool {
    let disconnect = Packet::Disconnect(Disconnect {
        reason,
        properties: Properties::new(),
    });
    if wbuf.encode(&disconnect).is_err() {
        return false;
    }
    let write = async {
        wbuf.write_all(writer).await?;
        writer.flush().await?;
        writer.shutdown().await
    };
    matches!(timeout(GOODBYE_WRITE, std::pin::pin!(write)).await, Some(Ok(())))
}

/// An MQTT 5 CONNECT's properties: what the options ask of the session, and the limits this
/// client holds the broker to (the largest packet it reads, the aliases it resolves).
fn connect_properties(o: &Options) -> Result<Properties, Error> {
    if o.version == Version::V311 {
        return Ok(Properties::new());
    }
    let mut p = o.connect_properties.clone();
    if o.session_expiry > 0 {
        p.push_int(PropertyId::SessionExpiryInterval, o.session_expiry)?;
    }
    let max_packet = o.max_packet_size.min(u32::MAX as usize) as u32;
    p.push_int(PropertyId::MaximumPacketSize, max_packet.max(1))?;
    if o.topic_alias_maximum > 0 {
        p.push_int(PropertyId::TopicAliasMaximum, o.topic_alias_maximum.into())?;
    }
    Ok(p)
}

/// What a broker sent instead of CONNACK, named from the packet's first byte: CONNACK must come
/// first (MQTT-3.2.0-1), and a broker that sends anything else is refused at once rather than after
/// a body that may be as large as the maximum packet size. None for CONNACK, and for the reserved
/// types, which the decoder reports.
fn before_connack(first_byte: u8) -> Option<&'static str> {
    Some(match first_byte >> 4 {
        1 => "CONNECT before CONNACK",
        3 => "PUBLISH before CONNACK",
        4 => "PUBACK before CONNACK",
        5 => "PUBREC before CONNACK",
        6 => "PUBREL before CONNACK",
        7 => "PUBCOMP before CONNACK",
        8 => "SUBSCRIBE before CONNACK",
        9 => "SUBACK before CONNACK",
        10 => "UNSUBSCRIBE before CONNACK",
        11 => "UNSUBACK before CONNACK",
        12 => "PINGREQ before CONNACK",
        13 => "PINGRESP before CONNACK",
        14 => "DISCONNECT before CONNACK",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_clients_disconnect_reason_follows_the_brokers_fault_in_mqtt5_only() {
        let too_large = Error::Protocol(CodecError::PacketTooLarge { size: 9, max: 8 });
        let cases = [
            (too_large, Some(ReasonCode::PACKET_TOO_LARGE)),
            (
                Error::Protocol(CodecError::Truncated),
                Some(ReasonCode::MALFORMED_PACKET),
            ),
            (
                Error::UnexpectedPacket(ALIAS_ABOVE_MAXIMUM),
                Some(ReasonCode::TOPIC_ALIAS_INVALID),
            ),
            (
                Error::UnexpectedPacket("second CONNACK"),
                Some(ReasonCode::PROTOCOL_ERROR),
            ),
            (Error::AuthFailed("refused".into()), Some(ReasonCode::UNSPECIFIED_ERROR)),
            (Error::KeepAliveTimeout, None),
            (Error::ConnectionClosed, None),
            (Error::Io("reset".into()), None),
            (Error::refused(ReasonCode::BANNED), None),
            (
                Error::ServerDisconnected {
                    code: ReasonCode::PROTOCOL_ERROR,
                    reason: None,
                    server_reference: None,
                },
                None,
            ),
        ];
        for (error, want) in cases {
            assert_eq!(disconnect_reason(Version::V5, &error), want, "{error:?}");
            assert_eq!(disconnect_reason(Version::V311, &error), None, "{error:?}");
        }
    }

    /// Feeds `packet` to a read buffer the way the connection does (room made before each read,
    /// reads of at most `read` bytes), and returns the buffer's capacity after each read.
    fn capacities(packet: &[u8], read: usize) -> Vec<usize> {
        let mut rbuf = BytesMut::with_capacity(READ_CHUNK);
        let mut sent = 0;
        let mut seen = Vec::new();
        while sent < packet.len() {
            reserve_read(&mut rbuf, Version::V5, READ_CHUNK);
            let n = read.min(rbuf.capacity() - rbuf.len()).min(packet.len() - sent);
            rbuf.extend_from_slice(&packet[sent..sent + n]);
            sent += n;
            seen.push(rbuf.capacity());
        }
        seen
    }

    /// A PUBLISH of `size` bytes in all (fixed header included).
    fn publish_of(size: usize) -> Vec<u8> {
        // The remaining length's own size depends on its value: take the one that agrees.
        let mut packet = (1..=4)
            .find_map(|n| {
                let mut header = vec![0x30];
                let mut rest = size - 1 - n;
                loop {
                    let more = rest >= 128;
                    header.push((rest % 128) as u8 | if more { 0x80 } else { 0 });
                    rest /= 128;
                    if !more {
                        break;
                    }
                }
                (header.len() == 1 + n).then_some(header)
            })
            .unwrap();
        packet.extend_from_slice(&[0, 1, b't', 0]);
        packet.resize(size, b'x');
        assert_eq!(codec::pending_packet_len(&packet, Version::V5), Some(size));
        packet
    }

    #[test]
    fn a_header_declaring_a_huge_packet_reserves_a_chunk_not_its_size() {
        let mut rbuf = BytesMut::new();
        rbuf.extend_from_slice(&[0x30, 0xFF, 0xFF, 0xFF, 0x7F]);
        reserve_read(&mut rbuf, Version::V5, READ_CHUNK);
        assert!(rbuf.capacity() >= READ_CHUNK, "room for a read");
        assert!(rbuf.capacity() <= 2 * READ_CHUNK, "{}", rbuf.capacity());
        // Bytes trickling in: the buffer stays within twice what arrived, plus a chunk.
        let mut packet = vec![0x30, 0xFF, 0xFF, 0xFF, 0x7F];
        packet.resize(4 << 20, b'x');
        let mut held = 0;
        for capacity in capacities(&packet, 1000) {
            held += 1000;
            assert!(
                capacity <= 2 * held + 2 * READ_CHUNK,
                "{capacity} for {held} bytes held"
            );
        }
    }

    /// An idle client's buffer stays at the first size; reads that fill their room double it, up
    /// to a chunk, in a handful of reads.
    #[test]
    fn reads_start_small_and_grow_only_while_they_fill_their_room() {
        let mut room = ReadRoom::new();
        let mut rbuf = BytesMut::with_capacity(READ_FIRST);
        for _ in 0..1000 {
            room.reserve(&mut rbuf, Version::V5);
            rbuf.extend_from_slice(&[0xD0, 0]);
            room.read(2);
            rbuf.clear();
        }
        assert!(rbuf.capacity() <= 2 * READ_FIRST, "{}", rbuf.capacity());
        let mut reads = 0;
        while room.offered < READ_CHUNK {
            room.reserve(&mut rbuf, Version::V5);
            let n = room.offered;
            rbuf.resize(n, 0);
            room.read(n);
            rbuf.clear();
            reads += 1;
            assert!(reads <= 8, "{reads} full reads and the room is {}", room.offered);
        }
        assert!(rbuf.capacity() <= 2 * READ_CHUNK, "{}", rbuf.capacity());
    }

    #[test]
    fn a_packet_within_a_chunk_gets_room_for_all_of_it_at_once() {
        for size in [10, 1000, READ_CHUNK / 2, READ_CHUNK] {
            let packet = publish_of(size);
            let mut rbuf = BytesMut::from(&packet[..10]);
            reserve_read(&mut rbuf, Version::V5, READ_CHUNK);
            assert!(rbuf.capacity() - rbuf.len() >= size - 10, "{size}");
        }
    }

    #[test]
    fn a_large_packet_grows_by_doubling_so_it_takes_log_n_reserves() {
        for (size, read) in [
            (64 * 1024 + 100, 64 * 1024),
            (1 << 20, 64 * 1024),
            (16 << 20, 200 * 1024),
        ] {
            let seen = capacities(&publish_of(size), read);
            let mut grown = seen.windows(2).filter(|w| w[1] != w[0]).count();
            if seen[0] != READ_CHUNK {
                grown += 1;
            }
            // Doubling from a chunk: log2(size / chunk) steps, and one to start.
            let bound = (size / READ_CHUNK).ilog2() as usize + 2;
            assert!(grown <= bound, "{size}: {grown} reserves, capacities {seen:?}");
            assert!(*seen.last().unwrap() <= 2 * size + READ_CHUNK, "{size}: {seen:?}");
        }
    }

    #[test]
    fn before_connack_names_any_other_packet_from_its_first_byte() {
        assert_eq!(before_connack(0x20), None);
        assert_eq!(before_connack(0x30), Some("PUBLISH before CONNACK"));
        assert_eq!(
            before_connack(0x3D),
            Some("PUBLISH before CONNACK"),
            "flags do not matter"
        );
        assert_eq!(before_connack(0x62), Some("PUBREL before CONNACK"));
        assert_eq!(before_connack(0xE0), Some("DISCONNECT before CONNACK"));
        // Reserved types are the decoder's to report.
        assert_eq!(before_connack(0x00), None);
        assert_eq!(before_connack(0xF0), None);
        for t in 1..=14u8 {
            assert_eq!(before_connack(t << 4).is_none(), t == 2, "type {t}");
        }
    }
}
