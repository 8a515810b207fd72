//! Cuts the data frames a broker sends into pieces of at most [`PIECE`] bytes before tungstenite
//! reads them: tungstenite reserves a frame's whole declared length as soon as its header arrives,
//! while pieces make memory follow the bytes that arrive. The message a broker sent is the same
//! (RFC 6455 section 5.4 lets any intermediary fragment it this way); tungstenite joins the pieces
//! again as they come, within `max_message_size`.
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// The largest frame tungstenite is given: a larger data frame goes on as pieces this size.
pub(super) const PIECE: usize = 64 * 1024;
/// The longest frame header: 2 bytes, an 8-byte length, a 4-byte mask key.
const MAX_HEADER: usize = 14;

/// A stream whose incoming data frames are cut into pieces, once [`Pieces::framing`] is set
/// (before, during the HTTP handshake, bytes pass as they are). Writes pass as they are.
pub(super) struct Pieces<S> {
    inner: S,
    pub(super) framing: bool,
    /// Bytes read from the stream and not yet handed on: a header not all there, or what follows a
    /// header to cut.
    input: BytesMut,
    /// A piece's header made here, handed on from `head_at`.
    head: [u8; MAX_HEADER],
    head_len: usize,
    head_at: usize,
    /// Bytes that go on as they are before the next header: the rest of a frame (its header
    /// included, unless cut) or of a piece.
    left: u64,
    /// The frame being cut, when one is.
    cut: Option<Cut>,
}

/// What is left of a data frame being cut into pieces.
#[derive(Clone, Copy)]
struct Cut {
    /// Its payload bytes not yet in a piece.
    rest: u64,
    /// The first byte of the next piece's header when it is the frame's last: the frame's own for
    /// the first piece, then a continuation (opcode 0) with the frame's FIN bit.
    first: u8,
}

/// A frame header at the start of some bytes.
#[derive(Debug, PartialEq)]
struct Header {
    first: u8,
    masked: bool,
    /// Its own length in bytes.
    size: usize,
    /// The payload's length.
    len: u64,
}

impl Header {
    /// The header at the start of `bytes`, once all of it is there.
    fn parse(bytes: &[u8]) -> Option<Header> {
        let (&first, &second) = (bytes.first()?, bytes.get(1)?);
        let (extra, len) = match second & 0x7F {
            126 => (2, u64::from(u16::from_be_bytes(bytes.get(2..4)?.try_into().ok()?))),
            127 => (8, u64::from_be_bytes(bytes.get(2..10)?.try_into().ok()?)),
            n => (0, u64::from(n)),
        };
        let masked = second & 0x80 != 0;
        let size = 2 + extra + if masked { 4 } else { 0 };
        (bytes.len() >= size).then_some(Header {
            first,
            masked,
            size,
            len,
        })
    }

    /// A data frame (opcode below 8) too large to go on whole. A server's frames are never masked
    /// (RFC 6455 section 5.1): a masked one goes on whole, and tungstenite refuses it.
    fn needs_cutting(&self) -> bool {
        self.first & 0x08 == 0 && !self.masked && self.len > PIECE as u64
    }
}

/// How many of `bytes`, which come next in the stream, go on as they are: the `left` bytes of
/// the current frame or piece, then whole frames that need no cutting. Stops at a header not all
/// there, at a frame to cut, or, while `cutting`, where the next piece's header is due.
fn through(left: &mut u64, cutting: bool, bytes: &[u8]) -> usize {
    let mut at = 0;
    loop {
        let rest = (bytes.len() - at) as u64;
        if *left >= rest {
            *left -= rest;
            return bytes.len();
        }
        at += *left as usize;
        *left = 0;
        if cutting {
            return at;
        }
        match Header::parse(&bytes[at..]) {
            Some(h) if !h.needs_cutting() => *left = h.size as u64 + h.len,
            _ => return at,
        }
    }
}

/// The header of an unmasked frame: its bytes and how many of them there are.
fn header(first: u8, len: u64) -> ([u8; MAX_HEADER], usize) {
    let mut head = [0; MAX_HEADER];
    head[0] = first;
    let size = if len < 126 {
        head[1] = len as u8;
        2
    } else if len <= 0xFFFF {
        head[1] = 126;
        head[2..4].copy_from_slice(&(len as u16).to_be_bytes());
        4
    } else {
        head[1] = 127;
        head[2..10].copy_from_slice(&len.to_be_bytes());
        10
    };
    (head, size)
}

impl<S> Pieces<S> {
    pub(super) fn new(inner: S) -> Self {
        Pieces {
            inner,
            framing: false,
            input: BytesMut::new(),
            head: [0; MAX_HEADER],
            head_len: 0,
            head_at: 0,
            left: 0,
            cut: None,
        }
    }

    /// Makes the header of the next piece of the frame being cut.
    fn next_piece(&mut self, cut: Cut) {
        let len = cut.rest.min(PIECE as u64);
        let last = len == cut.rest;
        (self.head, self.head_len) = header(if last { cut.first } else { cut.first & 0x7F }, len);
        self.head_at = 0;
        self.left = len;
        self.cut = (!last).then_some(Cut {
            rest: cut.rest - len,
            first: cut.first & 0x80,
        });
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Pieces<S> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if !this.framing {
            return Pin::new(&mut this.inner).poll_read(cx, buf);
        }
        let start = buf.filled().len();
        loop {
            if buf.remaining() == 0 {
                return Poll::Ready(Ok(()));
            }
            if this.head_at < this.head_len {
                let n = (this.head_len - this.head_at).min(buf.remaining());
                buf.put_slice(&this.head[this.head_at..this.head_at + n]);
                this.head_at += n;
                continue;
            }
            let n = through(&mut this.left, this.cut.is_some(), &this.input);
            if n > 0 {
                // What does not fit now still goes on as it is.
                let put = n.min(buf.remaining());
                this.left += (n - put) as u64;
                buf.put_slice(&this.input[..put]);
                this.input.advance(put);
                continue;
            }
            if this.left == 0 {
                if let Some(cut) = this.cut {
                    this.next_piece(cut);
                    continue;
                }
                if let Some(h) = Header::parse(&this.input).filter(Header::needs_cutting) {
                    this.input.advance(h.size);
                    this.next_piece(Cut {
                        rest: h.len,
                        first: h.first,
                    });
                    continue;
                }
            }
            // More bytes are needed; whatever was handed on goes first.
            if buf.filled().len() > start {
                return Poll::Ready(Ok(()));
            }
            ready!(Pin::new(&mut this.inner).poll_read(cx, buf))?;
            let got = &buf.filled()[start..];
            if got.is_empty() {
                // The end of the stream: tungstenite sees it where it is.
                return Poll::Ready(Ok(()));
            }
            // Read straight into the caller's buffer: in the common case every byte goes on in
            // place; from the first header to make or complete on, the rest waits in `input`.
            let n = if this.input.is_empty() {
                through(&mut this.left, this.cut.is_some(), got)
            } else {
                0
            };
            this.input.extend_from_slice(&got[n..]);
            buf.set_filled(start + n);
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Pieces<S> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::AsyncReadExt;

    use super::*;

    /// A frame: `first` byte, unmasked, with `payload`.
    fn frame(first: u8, payload: &[u8]) -> Vec<u8> {
        let (head, size) = header(first, payload.len() as u64);
        [&head[..size], payload].concat()
    }

    /// Splits a stream of frames into (first byte, payload) pairs.
    fn frames(mut bytes: &[u8]) -> Vec<(u8, Vec<u8>)> {
        let mut out = Vec::new();
        while !bytes.is_empty() {
            let h = Header::parse(bytes).expect("a whole header");
            let end = h.size + h.len as usize;
            out.push((h.first, bytes[h.size..end].to_vec()));
            bytes = &bytes[end..];
        }
        out
    }

    /// What a reader with a buffer of `read` bytes gets of `stream` through [`Pieces`].
    fn read_through(stream: &[u8], read: usize) -> Vec<u8> {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(async {
                let mut pieces = Pieces::new(stream);
                pieces.framing = true;
                let mut out = Vec::new();
                let mut buf = vec![0; read];
                loop {
                    match pieces.read(&mut buf).await.unwrap() {
                        0 => return out,
                        n => out.extend_from_slice(&buf[..n]),
                    }
                }
            })
    }

    #[test]
    fn large_data_frames_arrive_as_pieces_and_everything_else_as_it_was() {
        let big: Vec<u8> = (0..PIECE * 3 + 7).map(|i| i as u8).collect();
        let second: Vec<u8> = (0..PIECE + 1).map(|i| (i / 3) as u8).collect();
        let mut stream = frame(0x82, b"small");
        stream.extend(frame(0x82, &big));
        // A fragmented message: a non-final binary frame, a ping between, a final continuation.
        stream.extend(frame(0x02, &second));
        stream.extend(frame(0x89, b"ping"));
        stream.extend(frame(0x80, &big[..PIECE]));
        stream.extend(frame(0x82, &[]));
        let want = vec![
            (0x82, b"small".to_vec()),
            (0x02, big[..PIECE].to_vec()),
            (0x00, big[PIECE..2 * PIECE].to_vec()),
            (0x00, big[2 * PIECE..3 * PIECE].to_vec()),
            (0x80, big[3 * PIECE..].to_vec()),
            (0x02, second[..PIECE].to_vec()),
            (0x00, second[PIECE..].to_vec()),
            (0x89, b"ping".to_vec()),
            (0x80, big[..PIECE].to_vec()),
            (0x82, Vec::new()),
        ];
        for read in [1, 2, 3, 13, 1000, PIECE - 1, PIECE + 9, 1 << 20] {
            let got = frames(&read_through(&stream, read));
            let shape = |f: &[(u8, Vec<u8>)]| f.iter().map(|(b, p)| (*b, p.len())).collect::<Vec<_>>();
            assert_eq!(shape(&got), shape(&want), "reads of {read} bytes");
            assert!(got == want, "reads of {read} bytes");
        }
    }

    #[test]
    fn a_header_declaring_a_huge_frame_becomes_a_piece_of_one_chunk() {
        let mut stream = vec![0x82, 127];
        stream.extend_from_slice(&(1u64 << 40).to_be_bytes());
        stream.extend_from_slice(b"a few bytes");
        let out = read_through(&stream, 4096);
        let h = Header::parse(&out).unwrap();
        assert_eq!((h.first, h.len), (0x02, PIECE as u64));
        assert_eq!(&out[h.size..], b"a few bytes");
    }

    #[test]
    fn masked_and_control_frames_go_on_whole() {
        let mut masked = vec![0x82, 0xFF];
        masked.extend_from_slice(&(PIECE as u64 + 1).to_be_bytes());
        masked.extend_from_slice(&[1, 2, 3, 4]);
        let mut control = vec![0x89, 127];
        control.extend_from_slice(&(PIECE as u64 + 1).to_be_bytes());
        for header in [masked, control] {
            let mut stream = header.clone();
            stream.resize(header.len() + PIECE + 1, 7);
            assert_eq!(read_through(&stream, 1000), stream);
        }
    }
}
