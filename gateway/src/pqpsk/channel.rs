//! One control channel: a QUIC connection and its single bidirectional stream carrying framed
//! messages (`pqgate_core::pqpsk::wire`). A reader task turns the stream into parsed messages;
//! dropping the channel closes the connection.

use pqgate_core::pqpsk::Failure;
use pqgate_core::pqpsk::wire::{self, HEADER_LEN, Message};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// Application close codes (QUIC `CONNECTION_CLOSE` with an application error code).
pub(super) mod close {
    /// Orderly: a newer channel replaced this one, or the node stops.
    pub(crate) const DONE: u32 = 0;
    /// The peer broke the protocol.
    pub(crate) const PROTOCOL: u32 = 1;
    /// The Hello named no configured peer, or a certificate of another peer.
    pub(crate) const UNKNOWN_PEER: u32 = 2;
    /// A TLS reload no longer trusts the peer's certificate (revoked, expired, other CA).
    pub(crate) const UNTRUSTED: u32 = 3;
}

/// Messages buffered between the reader task and the peer task (the protocol has at most one
/// exchange in flight, so a handful is plenty).
const QUEUE: usize = 4;

/// Reads one frame; a stream or connection error is [`Failure::Channel`], a malformed frame
/// [`Failure::Protocol`].
pub(super) async fn read_frame(recv: &mut quinn::RecvStream) -> Result<Message, Failure> {
    let mut head = [0u8; HEADER_LEN];
    recv.read_exact(&mut head)
        .await
        .map_err(|_| Failure::Channel)?;
    let header = wire::parse_header(&head).map_err(|_| Failure::Protocol)?;
    let mut body = vec![0u8; header.len];
    recv.read_exact(&mut body)
        .await
        .map_err(|_| Failure::Channel)?;
    wire::decode_body(header, &body).map_err(|_| Failure::Protocol)
}

/// A live channel.
pub(super) struct Chan {
    /// The connection (its TLS session gives the exporter).
    pub conn: quinn::Connection,
    send: quinn::SendStream,
    rx: mpsc::Receiver<Result<Message, Failure>>,
    reader: JoinHandle<()>,
}

impl Chan {
    /// Starts the reader task over `recv`.
    pub(super) fn start(
        conn: quinn::Connection,
        send: quinn::SendStream,
        mut recv: quinn::RecvStream,
    ) -> Self {
        let (tx, rx) = mpsc::channel(QUEUE);
        let reader = tokio::spawn(async move {
            loop {
                let msg = read_frame(&mut recv).await;
                let stop = msg.is_err();
                if tx.send(msg).await.is_err() || stop {
                    return;
                }
            }
        });
        Self {
            conn,
            send,
            rx,
            reader,
        }
    }

    /// Sends one message.
    pub(super) async fn send(&mut self, msg: &Message) -> Result<(), Failure> {
        let frame = wire::encode(msg).map_err(|_| Failure::Protocol)?;
        self.send
            .write_all(&frame)
            .await
            .map_err(|_| Failure::Channel)
    }

    /// The next message; `Err` once the stream failed (then the channel is done).
    pub(super) async fn recv(&mut self) -> Result<Message, Failure> {
        self.rx.recv().await.unwrap_or(Err(Failure::Channel))
    }

    /// Closes the connection with an application code.
    pub(super) fn close(&self, code: u32, reason: &[u8]) {
        self.conn.close(code.into(), reason);
    }
}

impl Drop for Chan {
    fn drop(&mut self) {
        self.reader.abort();
        self.conn.close(close::DONE.into(), b"closed");
    }
}
