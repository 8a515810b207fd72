//! The network task: connects, runs one connection's read/write loop and keep-alive, and hands
//! everything user-visible to the callback thread. It never runs user code.
use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc::{self, error::TrySendError};
use tokio::time::{Instant, sleep_until, timeout};

use crate::codec::{self, ConnectReturnCode, Packet, QoS, Subscribe, Unsubscribe};

use super::dispatch::{Event, LogLevel};
use super::session::{AckAction, Awaiting, PendingSubscribe, Session};
use super::tokens::{Outcome, Token, TokenResult};
use super::transport::{self, Reader, Writer};
use super::{Address, Command, Error, Options, Shared, State};

/// Stop taking commands while this much is waiting to be written: the socket is the bottleneck and
/// encoding more would only grow memory.
const WRITE_HIGH_WATER: usize = 1 << 20;
/// Keep at least this much free space for each socket read, so small reads don't reallocate.
const READ_CHUNK: usize = 64 * 1024;

pub(super) struct Ctx {
    pub shared: Arc<Shared>,
    pub events: mpsc::Sender<Event>,
    pub options: Options,
    pub address: Address,
}

/// Everything leaving the network task for the user: events for the callback thread (kept in order,
/// held back in `backlog` when the callback queue is full) and token completions (batched so a burst
/// of acknowledgements takes the token lock once).
struct Outbox<'a> {
    ctx: &'a Ctx,
    backlog: VecDeque<Event>,
    done: Vec<(Token, TokenResult)>,
}

impl<'a> Outbox<'a> {
    fn new(ctx: &'a Ctx) -> Self {
        Outbox {
            ctx,
            backlog: VecDeque::new(),
            done: Vec::new(),
        }
    }

    fn push(&mut self, event: Event) {
        if !self.backlog.is_empty() {
            self.backlog.push_back(event);
            return;
        }
        match self.ctx.events.try_send(event) {
            Ok(()) => {}
            Err(TrySendError::Full(event)) => self.backlog.push_back(event),
            // The callback thread is gone only when the client is closing.
            Err(TrySendError::Closed(_)) => {}
        }
    }

    fn log(&mut self, level: LogLevel, line: impl FnOnce() -> String) {
        if self.ctx.shared.wants_log(level) {
            self.push(Event::Log(level, line()));
        }
    }

    fn complete(&mut self, token: Token, result: TokenResult) {
        self.done.push((token, result));
    }

    fn flush(&mut self) {
        if self.done.is_empty() {
            return;
        }
        // Taken out (and put back, keeping its capacity) so `push` can borrow self meanwhile.
        let mut done = std::mem::take(&mut self.done);
        if self.ctx.shared.has_on_complete.load(Ordering::Acquire) {
            for (t, r) in &done {
                self.push(Event::Completed(*t, r.clone()));
            }
        }
        self.ctx.shared.tokens.complete_all(done.drain(..));
        self.done = done;
    }

    /// Delivers the backlog, waiting for the callback thread: used between connections, where
    /// there is no socket to pause.
    async fn drain(&mut self) {
        self.flush();
        while let Some(event) = self.backlog.pop_front() {
            if self.ctx.events.send(event).await.is_err() {
                self.backlog.clear();
            }
        }
    }

    /// Drops registrations made by a SUBSCRIBE that did not succeed. Done on the callback thread,
    /// because dropping a registration may run the user's userdata destructor.
    fn unregister(&mut self, filters: Vec<(String, u64)>) {
        if !filters.is_empty() {
            self.push(Event::Unregister(filters));
        }
    }

    /// Completes a command that cannot run, undoing what the API did for it.
    fn reject(&mut self, command: Command, error: Error) {
        let token = match command {
            Command::Subscribe(t, filters) => {
                self.unregister(
                    filters
                        .into_iter()
                        .map(|(f, _, id)| (f.as_str().to_owned(), id))
                        .collect(),
                );
                t
            }
            Command::Connect(t) | Command::Publish(t, _) | Command::Unsubscribe(t, _) | Command::Disconnect(t) => t,
        };
        self.complete(token, Err(error));
    }
}

/// How a connection ended.
enum Ended {
    Disconnected(Token),
    Lost(Error),
}

pub(super) async fn run(ctx: Ctx, mut commands: mpsc::UnboundedReceiver<Command>) {
    let mut session = Session::new(ctx.options.max_inflight);
    let mut out = Outbox::new(&ctx);
    // Subscribes made while disconnected: sent right after the next CONNACK.
    let mut deferred: Vec<Command> = Vec::new();
    while let Some(command) = commands.recv().await {
        let token = match command {
            Command::Connect(token) => token,
            Command::Subscribe(..) => {
                deferred.push(command);
                continue;
            }
            other => {
                out.reject(other, Error::NotConnected);
                out.drain().await;
                continue;
            }
        };
        out.log(LogLevel::Info, || format!("connecting to {}", ctx.address));
        let link = match timeout(ctx.options.connect_timeout, handshake(&ctx)).await {
            Ok(Ok(link)) => link,
            Ok(Err(e)) => {
                connect_failed(&ctx, &mut out, token, e).await;
                continue;
            }
            Err(_) => {
                connect_failed(&ctx, &mut out, token, Error::ConnectTimeout).await;
                continue;
            }
        };
        let _ = ctx.shared.state.compare_exchange(
            State::Connecting as u8,
            State::Connected as u8,
            Ordering::AcqRel,
            Ordering::Acquire,
        );
        out.log(LogLevel::Info, || {
            format!(
                "connected to {} (session present: {})",
                ctx.address, link.session_present
            )
        });
        out.complete(
            token,
            Ok(Outcome {
                codes: vec![link.session_present as u8],
            }),
        );
        out.flush();
        let ended = serve(link, &mut session, &mut out, &mut commands, &mut deferred).await;
        let reason = match ended {
            Ended::Disconnected(token) => {
                out.log(LogLevel::Info, || "disconnected".into());
                out.complete(token, Ok(Outcome::default()));
                Error::Cancelled
            }
            Ended::Lost(e) => {
                out.log(LogLevel::Warning, || format!("connection lost: {e}"));
                e
            }
        };
        for (t, r) in session.fail_all(&reason) {
            out.complete(t, r);
        }
        ctx.shared.set_state(State::Disconnected);
        out.drain().await;
    }
}

async fn connect_failed(ctx: &Ctx, out: &mut Outbox<'_>, token: Token, error: Error) {
    out.log(LogLevel::Error, || {
        format!("connect to {} failed: {error}", ctx.address)
    });
    ctx.shared.set_state(State::Disconnected);
    out.complete(token, Err(error));
    out.drain().await;
}

struct Link {
    reader: Reader,
    writer: Writer,
    rbuf: BytesMut,
    wbuf: BytesMut,
    session_present: bool,
}

/// Opens the stream, sends CONNECT and waits for CONNACK. Bytes after the CONNACK stay in `rbuf`.
async fn handshake(ctx: &Ctx) -> Result<Link, Error> {
    let (reader, writer) = transport::connect(&ctx.address).await?;
    let mut link = Link {
        reader,
        writer,
        rbuf: BytesMut::with_capacity(READ_CHUNK),
        wbuf: BytesMut::new(),
        session_present: false,
    };
    let o = &ctx.options;
    let connect = codec::Connect {
        protocol_level: 4,
        clean_session: o.clean_session,
        keep_alive: o.keep_alive,
        client_id: codec::MqttStr::new(&o.client_id)?,
        will: o.will.clone(),
        username: o.username.clone(),
        password: o.password.clone(),
    };
    Packet::Connect(connect).encode(&mut link.wbuf)?;
    link.writer.write_all_buf(&mut link.wbuf).await?;
    loop {
        match codec::decode(&mut link.rbuf, o.max_packet_size)? {
            Some(Packet::ConnAck(ack)) if ack.code == ConnectReturnCode::Accepted => {
                link.session_present = ack.session_present;
                return Ok(link);
            }
            Some(Packet::ConnAck(ack)) => return Err(Error::Refused(ack.code)),
            Some(_) => return Err(Error::UnexpectedPacket("packet before CONNACK")),
            None => {}
        }
        if link.reader.read_buf(&mut link.rbuf).await? == 0 {
            return Err(Error::ConnectionClosed);
        }
    }
}

/// Keep-alive bookkeeping (MQTT-3.1.2-24): a PINGREQ goes out when nothing was sent or nothing was
/// received for a keep-alive interval, so a silent (half-open) link is noticed even while we publish.
struct KeepAlive {
    interval: Option<Duration>,
    ping_timeout: Duration,
    last_sent: Instant,
    last_received: Instant,
    ping_sent: Option<Instant>,
}

impl KeepAlive {
    fn deadline(&self) -> Option<Instant> {
        let interval = self.interval?;
        Some(match self.ping_sent {
            Some(t) => t + self.ping_timeout,
            None => self.last_sent.min(self.last_received) + interval,
        })
    }

    /// When the loop's timer must next fire: the keep-alive deadline or the disconnect deadline.
    fn next_wakeup(&self, disconnecting: Option<(Token, Instant)>, far: Instant) -> Instant {
        let next = self.deadline().unwrap_or(far);
        disconnecting.map_or(next, |(_, d)| next.min(d))
    }
}

fn encode(wbuf: &mut BytesMut, packet: &Packet) -> Result<(), Error> {
    packet.encode(wbuf).map_err(Error::Protocol)
}

async fn serve(
    link: Link,
    session: &mut Session,
    out: &mut Outbox<'_>,
    commands: &mut mpsc::UnboundedReceiver<Command>,
    deferred: &mut Vec<Command>,
) -> Ended {
    let ctx = out.ctx;
    let Link {
        mut reader,
        mut writer,
        mut rbuf,
        mut wbuf,
        ..
    } = link;
    let now = Instant::now();
    let mut ka = KeepAlive {
        interval: (ctx.options.keep_alive > 0).then(|| Duration::from_secs(ctx.options.keep_alive.into())),
        ping_timeout: ctx.options.ping_timeout,
        last_sent: now,
        last_received: now,
        ping_sent: None,
    };
    // QoS 0 publishes complete once their bytes are handed to the socket.
    let mut written_tokens: Vec<Token> = Vec::new();
    let mut disconnecting: Option<(Token, Instant)> = None;
    let far = now + Duration::from_secs(86400 * 365);
    let timer = sleep_until(ka.deadline().unwrap_or(far));
    tokio::pin!(timer);

    for command in deferred.drain(..) {
        if let Err(e) = handle_command(command, &mut wbuf, session, out, &mut written_tokens) {
            return Ended::Lost(e);
        }
    }
    // Packets already received with the CONNACK.
    if let Err(e) = process_input(&mut rbuf, &mut wbuf, session, out, &mut ka) {
        return Ended::Lost(e);
    }
    loop {
        out.flush();
        if let Some((token, deadline)) = disconnecting {
            if session.is_idle() || Instant::now() >= deadline {
                return finish_disconnect(writer, wbuf, written_tokens, out, token).await;
            }
        }
        if rbuf.capacity() - rbuf.len() < READ_CHUNK / 4 {
            rbuf.reserve(READ_CHUNK);
        }
        tokio::select! {
            r = reader.read_buf(&mut rbuf), if out.backlog.is_empty() => match r {
                Ok(0) => return Ended::Lost(Error::ConnectionClosed),
                Ok(_) => {
                    ka.last_received = Instant::now();
                    let pinging = ka.ping_sent.is_some();
                    if let Err(e) = process_input(&mut rbuf, &mut wbuf, session, out, &mut ka) {
                        return Ended::Lost(e);
                    }
                    if pinging && ka.ping_sent.is_none() {
                        // PINGRESP: the timer still points at the ping deadline; the next PINGREQ is due earlier.
                        timer.as_mut().reset(ka.next_wakeup(disconnecting, far));
                    }
                }
                Err(e) => return Ended::Lost(e.into()),
            },
            permit = ctx.events.reserve(), if !out.backlog.is_empty() => {
                if let (Ok(permit), Some(event)) = (permit, out.backlog.pop_front()) {
                    permit.send(event);
                } else {
                    out.backlog.clear();
                }
            },
            r = writer.write(&wbuf), if !wbuf.is_empty() => match r {
                Ok(0) => return Ended::Lost(Error::ConnectionClosed),
                Ok(n) => {
                    wbuf.advance(n);
                    ka.last_sent = Instant::now();
                    if wbuf.is_empty() {
                        for t in written_tokens.drain(..) {
                            out.complete(t, Ok(Outcome::default()));
                        }
                    }
                }
                Err(e) => return Ended::Lost(e.into()),
            },
            command = commands.recv(), if disconnecting.is_none() && wbuf.len() < WRITE_HIGH_WATER => {
                let Some(mut command) = command else { return Ended::Lost(Error::Cancelled) };
                // Take whatever else is queued too, so one socket write carries the whole batch.
                loop {
                    if let Command::Disconnect(t) = command {
                        disconnecting = Some((t, Instant::now() + ctx.options.disconnect_timeout));
                        timer.as_mut().reset(ka.next_wakeup(disconnecting, far));
                        break;
                    }
                    if let Err(e) = handle_command(command, &mut wbuf, session, out, &mut written_tokens) {
                        return Ended::Lost(e);
                    }
                    if wbuf.len() >= WRITE_HIGH_WATER {
                        break;
                    }
                    match commands.try_recv() {
                        Ok(c) => command = c,
                        Err(_) => break,
                    }
                }
            },
            () = &mut timer => {
                let now = Instant::now();
                if let Some(sent) = ka.ping_sent {
                    if now >= sent + ka.ping_timeout {
                        return Ended::Lost(Error::KeepAliveTimeout);
                    }
                } else if ka.deadline().is_some_and(|d| now >= d) {
                    if let Err(e) = encode(&mut wbuf, &Packet::PingReq) {
                        return Ended::Lost(e);
                    }
                    out.log(LogLevel::Debug, || "sending PINGREQ".into());
                    ka.ping_sent = Some(now);
                }
                timer.as_mut().reset(ka.next_wakeup(disconnecting, far));
            },
        }
    }
}

/// Sends DISCONNECT after everything queued, closes the socket, and cancels what never completed.
async fn finish_disconnect(
    mut writer: Writer,
    mut wbuf: BytesMut,
    written_tokens: Vec<Token>,
    out: &mut Outbox<'_>,
    token: Token,
) -> Ended {
    let sent = async {
        encode(&mut wbuf, &Packet::Disconnect)?;
        writer.write_all_buf(&mut wbuf).await?;
        writer.shutdown().await?;
        Ok::<(), Error>(())
    }
    .await;
    let result = if sent.is_ok() {
        Ok(Outcome::default())
    } else {
        Err(Error::Cancelled)
    };
    for t in written_tokens {
        out.complete(t, result.clone());
    }
    match sent {
        Ok(()) => Ended::Disconnected(token),
        Err(e) => {
            out.complete(token, Err(e.clone()));
            Ended::Lost(e)
        }
    }
}

fn handle_command(
    command: Command,
    wbuf: &mut BytesMut,
    session: &mut Session,
    out: &mut Outbox<'_>,
    written_tokens: &mut Vec<Token>,
) -> Result<(), Error> {
    match command {
        Command::Connect(t) => out.complete(t, Err(Error::AlreadyConnected)),
        Command::Publish(t, publish) if publish.qos == QoS::AtMostOnce => {
            encode(wbuf, &Packet::Publish(publish))?;
            written_tokens.push(t);
        }
        Command::Publish(t, publish) => {
            if let Some(p) = session.submit(t, publish) {
                encode(wbuf, &Packet::Publish(p))?;
            }
        }
        Command::Subscribe(t, filters) => {
            let Some(pkid) = session.allocate_id() else {
                out.reject(Command::Subscribe(t, filters), Error::PacketIdsExhausted);
                return Ok(());
            };
            let packet = Subscribe {
                pkid,
                filters: filters.iter().map(|(f, q, _)| (f.clone(), *q)).collect(),
            };
            encode(wbuf, &Packet::Subscribe(packet))?;
            let filters = filters
                .into_iter()
                .map(|(f, _, id)| (f.as_str().to_owned(), id))
                .collect();
            session.subscribes.insert(pkid, PendingSubscribe { token: t, filters });
        }
        Command::Unsubscribe(t, filters) => {
            let Some(pkid) = session.allocate_id() else {
                out.complete(t, Err(Error::PacketIdsExhausted));
                return Ok(());
            };
            encode(wbuf, &Packet::Unsubscribe(Unsubscribe { pkid, filters }))?;
            session.unsubscribes.insert(pkid, t);
        }
        Command::Disconnect(t) => out.complete(t, Err(Error::NotConnected)),
    }
    Ok(())
}

/// Decodes and handles every whole packet in `rbuf`, queueing replies in `wbuf`.
fn process_input(
    rbuf: &mut BytesMut,
    wbuf: &mut BytesMut,
    session: &mut Session,
    out: &mut Outbox<'_>,
    ka: &mut KeepAlive,
) -> Result<(), Error> {
    let max = out.ctx.options.max_packet_size;
    while let Some(packet) = codec::decode(rbuf, max)? {
        match packet {
            Packet::Publish(p) => {
                let id = p.pkid;
                match p.qos {
                    QoS::AtMostOnce => out.push(Event::Message(p)),
                    QoS::AtLeastOnce => {
                        out.push(Event::Message(p));
                        encode(wbuf, &Packet::PubAck(id))?;
                    }
                    QoS::ExactlyOnce => {
                        // Delivered on first receipt only; a resend before PUBREL just gets PUBREC again.
                        if session.inbound_qos2.insert(id) {
                            out.push(Event::Message(p));
                        }
                        encode(wbuf, &Packet::PubRec(id))?;
                    }
                }
            }
            Packet::PubAck(id) => acknowledge(Awaiting::PubAck, id, wbuf, session, out)?,
            Packet::PubRec(id) => acknowledge(Awaiting::PubRec, id, wbuf, session, out)?,
            Packet::PubComp(id) => acknowledge(Awaiting::PubComp, id, wbuf, session, out)?,
            Packet::PubRel(id) => {
                session.inbound_qos2.remove(&id);
                encode(wbuf, &Packet::PubComp(id))?;
            }
            Packet::SubAck(ack) => {
                if let Some((token, result, refused)) = session.on_suback(ack.pkid, &ack.codes) {
                    if !refused.is_empty() {
                        out.log(LogLevel::Warning, || {
                            format!("broker refused subscription(s): {refused:?}")
                        });
                    }
                    out.unregister(refused);
                    out.complete(token, result);
                }
            }
            Packet::UnsubAck(id) => {
                if let Some(token) = session.on_unsuback(id) {
                    out.complete(token, Ok(Outcome::default()));
                }
            }
            Packet::PingResp => ka.ping_sent = None,
            Packet::ConnAck(_) => return Err(Error::UnexpectedPacket("second CONNACK")),
            Packet::Connect(_)
            | Packet::Subscribe(_)
            | Packet::Unsubscribe(_)
            | Packet::PingReq
            | Packet::Disconnect => {
                return Err(Error::UnexpectedPacket("client-to-server packet"));
            }
        }
    }
    Ok(())
}

fn acknowledge(
    kind: Awaiting,
    id: u16,
    wbuf: &mut BytesMut,
    session: &mut Session,
    out: &mut Outbox<'_>,
) -> Result<(), Error> {
    match session.on_ack(kind, id) {
        AckAction::Nothing => {}
        AckAction::SendPubRel(id) => encode(wbuf, &Packet::PubRel(id))?,
        AckAction::Complete(token, result) => {
            out.complete(token, result);
            for p in session.fill_window() {
                encode(wbuf, &Packet::Publish(p))?;
            }
        }
    }
    Ok(())
}
