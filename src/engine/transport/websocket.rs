//! MQTT over WebSockets (MQTT 3.1.1 section 6) with tungstenite: the handshake asks for the `mqtt`
//! subprotocol, and the message stream is turned back into a byte stream. MQTT packets may span
//! messages and a message may hold several packets, so the codec above sees bytes as from TCP.
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::{Bytes, BytesMut};
use futures_util::{Sink, Stream as _};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{self, Message};

use super::{Address, Stream, split};

mod pieces;

use pieces::{PIECE, Pieces};

/// Runs the WebSocket handshake for `addr` over `stream` (TCP or TLS).
pub(super) async fn connect<S>(addr: &Address, stream: S, max_packet_size: usize) -> io::Result<Stream>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let mut request = addr.to_string().into_client_request().map_err(ws_error)?;
    // MQTT-6.0.0-3: the client offers "mqtt"; tungstenite then also fails the handshake unless the
    // server picks it.
    request
        .headers_mut()
        .insert("Sec-WebSocket-Protocol", HeaderValue::from_static("mqtt"));
    // tungstenite reserves a frame's declared length when its header arrives, so it gets frames of
    // at most a piece: larger data frames are cut (see `pieces`), and anything else larger is
    // refused before it is buffered. A message, which it joins from the pieces as they arrive, never
    // needs to be larger than the largest packet plus its fixed header. Writes go out as they are
    // made (the connection already batches packets into one write).
    let config = WebSocketConfig::default()
        .write_buffer_size(0)
        .max_message_size(Some(max_packet_size.saturating_add(5)))
        .max_frame_size(Some(PIECE));
    let (mut ws, _response) = tokio_tungstenite::client_async_with_config(request, Pieces::new(stream), Some(config))
        .await
        .map_err(ws_error)?;
    ws.get_mut().framing = true;
    Ok(split(ByteStream {
        ws,
        pending: Bytes::new(),
    }))
}

fn ws_error(e: tungstenite::Error) -> io::Error {
    match e {
        tungstenite::Error::Io(e) => e,
        e => io::Error::other(format!("WebSocket: {e}")),
    }
}

/// A WebSocket connection seen as a byte stream: each write is one binary message; reads return
/// the bytes of binary messages in order.
struct ByteStream<S> {
    ws: WebSocketStream<S>,
    /// What is left of the last message read.
    pending: Bytes,
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for ByteStream<S> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        while this.pending.is_empty() {
            match ready!(Pin::new(&mut this.ws).poll_next(cx)) {
                Some(Ok(Message::Binary(data))) => this.pending = data,
                Some(Ok(Message::Text(_))) => {
                    // MQTT-6.0.0-1: a text message is a protocol violation; close.
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        "WebSocket: the broker sent a text message (MQTT uses binary messages only)",
                    )));
                }
                // The end of the stream, as EOF on TCP.
                Some(Ok(Message::Close(_))) | None => return Poll::Ready(Ok(())),
                // Pings are answered by tungstenite itself.
                Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => {}
                Some(Err(e)) => return Poll::Ready(Err(ws_error(e))),
            }
        }
        let n = buf.remaining().min(this.pending.len());
        buf.put_slice(&this.pending.split_to(n));
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for ByteStream<S> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        self.poll_write_vectored(cx, &[io::IoSlice::new(buf)])
    }

    /// The whole batch becomes one message, so a burst of packets costs one frame header.
    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        ready!(Pin::new(&mut this.ws).poll_ready(cx)).map_err(ws_error)?;
        let len = bufs.iter().map(|b| b.len()).sum();
        let mut message = BytesMut::with_capacity(len);
        bufs.iter().for_each(|b| message.extend_from_slice(b));
        Pin::new(&mut this.ws)
            .start_send(Message::Binary(message.freeze()))
            .map_err(ws_error)?;
        Poll::Ready(Ok(len))
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().ws).poll_flush(cx).map_err(ws_error)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().ws).poll_close(cx).map_err(ws_error)
    }
}
