//! One tunnelled TCP connection's QUIC stream as a single `AsyncRead + AsyncWrite` for the
//! relay: shutdown finishes the send side (TCP FIN -> stream FIN); dropped without a shutdown
//! (the relay failed or timed out), the stream is reset and the receive side stopped, so the
//! peer sees an abort instead of a clean end. After a clean end, [`QuicStream::delivered`]
//! waits for the peer's acknowledgement of everything sent, so a draining gateway (or a closing
//! connection) does not cut the last bytes.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use quinn::{RecvStream, SendStream, VarInt};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::code;

/// A bidirectional QUIC stream.
pub(crate) struct QuicStream {
    send: SendStream,
    recv: RecvStream,
    finished: bool,
}

impl QuicStream {
    /// Joins the two halves of one stream.
    pub(crate) fn new(send: SendStream, recv: RecvStream) -> Self {
        Self {
            send,
            recv,
            finished: false,
        }
    }

    /// After the relay: once the send side was finished, waits (at most `limit`) until the
    /// peer has acknowledged all of it; true if it did.
    pub(crate) async fn delivered(&mut self, limit: Duration) -> bool {
        if !self.finished {
            return false;
        }
        matches!(
            tokio::time::timeout(limit, self.send.stopped()).await,
            Ok(Ok(None))
        )
    }

    /// Aborts both directions with `code` (reset and stop).
    pub(crate) fn abort(mut self, reason: u32) {
        let _ = self.send.reset(VarInt::from_u32(reason));
        let _ = self.recv.stop(VarInt::from_u32(reason));
        self.finished = true;
    }
}

impl Drop for QuicStream {
    fn drop(&mut self) {
        if !self.finished {
            let _ = self.send.reset(VarInt::from_u32(code::ABORTED));
            let _ = self.recv.stop(VarInt::from_u32(code::ABORTED));
        }
    }
}

impl AsyncRead for QuicStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        AsyncRead::poll_read(Pin::new(&mut self.recv), cx, buf)
    }
}

impl AsyncWrite for QuicStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        AsyncWrite::poll_write(Pin::new(&mut self.send), cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        AsyncWrite::poll_flush(Pin::new(&mut self.send), cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let done = AsyncWrite::poll_shutdown(Pin::new(&mut self.send), cx);
        if matches!(done, Poll::Ready(Ok(()))) {
            self.finished = true;
        }
        done
    }
}
