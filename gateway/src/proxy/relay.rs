//! Copies bytes both ways between a client and a backend until both sides close, either side
//! fails, or nothing moves for the idle timeout. Half-closes are passed on.

use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use metrics::Counter;
use pqgate_core::metrics::ConnectionOutcome;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::time::Instant;

/// First read buffer per direction: one page, so an idle connection costs little memory.
const INITIAL_CHUNK_BYTES: usize = 4 * 1024;
/// Largest read buffer: a read that fills the buffer doubles it up to this. Measured on the
/// site-to-site pair (benches/results/relay-buffer-2026-11-22.md): 16 KiB costs a third of the
/// bulk throughput, 64 KiB leaves ~72 KiB per idle connection after large bursts (allocator
/// retention), 32 KiB keeps both goals.
const MAX_CHUNK_BYTES: usize = 32 * 1024;
/// A grown buffer shrinks back to [`INITIAL_CHUNK_BYTES`] after this long with nothing to read:
/// long enough not to churn during a transfer, short enough that idle connections stay small.
const SHRINK_AFTER_QUIET: Duration = Duration::from_millis(500);

/// What a relay moved and how it ended.
#[derive(Clone, Copy, Debug)]
pub(crate) struct RelayReport {
    /// Bytes from the client towards the backend.
    pub up: u64,
    /// Bytes from the backend towards the client.
    pub down: u64,
    /// How it ended.
    pub outcome: ConnectionOutcome,
}

/// Per-direction byte counters, registered once per connection.
pub(crate) struct RelayCounters {
    /// Client to backend.
    pub up: Counter,
    /// Backend to client.
    pub down: Counter,
}

/// Shared between both directions and the idle watch.
struct Activity {
    start: Instant,
    last_ms: AtomicU64,
}

impl Activity {
    fn touch(&self) {
        let ms = u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_ms.store(ms, Ordering::Relaxed);
    }

    fn idle_for(&self) -> Duration {
        let last = Duration::from_millis(self.last_ms.load(Ordering::Relaxed));
        self.start.elapsed().saturating_sub(last)
    }
}

/// Relays between `client` and `backend`.
pub(crate) async fn relay<C, B>(
    client: C,
    backend: B,
    idle: Duration,
    counters: RelayCounters,
) -> RelayReport
where
    C: AsyncRead + AsyncWrite + Unpin,
    B: AsyncRead + AsyncWrite + Unpin,
{
    let activity = Arc::new(Activity {
        start: Instant::now(),
        last_ms: AtomicU64::new(0),
    });
    let (up_bytes, down_bytes) = (AtomicU64::new(0), AtomicU64::new(0));
    let (client_r, client_w) = tokio::io::split(client);
    let (backend_r, backend_w) = tokio::io::split(backend);
    let up = pump(client_r, backend_w, &up_bytes, &counters.up, &activity);
    let down = pump(backend_r, client_w, &down_bytes, &counters.down, &activity);
    let outcome = tokio::select! {
        res = async { tokio::try_join!(up, down) } => match res {
            Ok(_) => ConnectionOutcome::Completed,
            Err(_) => ConnectionOutcome::Error,
        },
        () = idle_watch(&activity, idle) => ConnectionOutcome::IdleTimeout,
    };
    RelayReport {
        up: up_bytes.load(Ordering::Relaxed),
        down: down_bytes.load(Ordering::Relaxed),
        outcome,
    }
}

async fn pump<R, W>(
    mut from: R,
    mut to: W,
    bytes: &AtomicU64,
    counter: &Counter,
    activity: &Activity,
) -> io::Result<()>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut buf = vec![0u8; INITIAL_CHUNK_BYTES];
    loop {
        let read = if buf.len() > INITIAL_CHUNK_BYTES {
            // `read` is cancel safe: dropping it for the timer loses no data.
            tokio::select! {
                r = from.read(&mut buf) => Some(r),
                () = tokio::time::sleep(SHRINK_AFTER_QUIET) => None,
            }
        } else {
            Some(from.read(&mut buf).await)
        };
        let Some(read) = read else {
            shrink(&mut buf);
            continue;
        };
        let n = match read {
            Ok(n) => n,
            // A peer that closes TCP without a TLS close_notify: treat as end of stream.
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => 0,
            Err(e) => return Err(e),
        };
        if n == 0 {
            // Pass the half-close on; the other direction keeps flowing.
            let _ = to.shutdown().await;
            return Ok(());
        }
        to.write_all(&buf[..n]).await?;
        to.flush().await?;
        resize_for_next_read(&mut buf, n);
        let n = n as u64;
        bytes.fetch_add(n, Ordering::Relaxed);
        counter.increment(n);
        activity.touch();
    }
}

/// Grows the buffer after a read that filled it (a bulk transfer is under way) and gives the
/// memory back after one that used less than a quarter (the burst is over). Together with the
/// quiet timer in `pump`, an idle connection holds [`INITIAL_CHUNK_BYTES`] per direction.
fn resize_for_next_read(buf: &mut Vec<u8>, last_read: usize) {
    if last_read == buf.len() && buf.len() < MAX_CHUNK_BYTES {
        buf.resize(buf.len() * 2, 0);
    } else if last_read < buf.len() / 4 {
        shrink(buf);
    }
}

/// Returns a grown buffer's memory.
fn shrink(buf: &mut Vec<u8>) {
    if buf.len() > INITIAL_CHUNK_BYTES {
        buf.truncate(INITIAL_CHUNK_BYTES);
        buf.shrink_to_fit();
    }
}

async fn idle_watch(activity: &Activity, idle: Duration) {
    loop {
        let quiet = activity.idle_for();
        if quiet >= idle {
            return;
        }
        tokio::time::sleep(idle - quiet).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counters() -> RelayCounters {
        RelayCounters {
            up: Counter::noop(),
            down: Counter::noop(),
        }
    }

    #[tokio::test]
    async fn relays_both_ways_and_passes_half_close() {
        let (client, mut client_peer) = tokio::io::duplex(1024);
        let (backend, mut backend_peer) = tokio::io::duplex(1024);
        let task = tokio::spawn(relay(client, backend, Duration::from_secs(30), counters()));
        client_peer.write_all(b"hello").await.unwrap();
        client_peer.shutdown().await.unwrap();
        let mut got = Vec::new();
        backend_peer.read_to_end(&mut got).await.unwrap();
        assert_eq!(got, b"hello");
        backend_peer.write_all(b"world!").await.unwrap();
        drop(backend_peer);
        let mut back = Vec::new();
        client_peer.read_to_end(&mut back).await.unwrap();
        assert_eq!(back, b"world!");
        let report = task.await.unwrap();
        assert_eq!((report.up, report.down), (5, 6));
        assert_eq!(report.outcome, ConnectionOutcome::Completed);
    }

    #[tokio::test]
    async fn bulk_transfer_is_byte_exact_as_buffers_grow() {
        let (client, mut client_peer) = tokio::io::duplex(256 * 1024);
        let (backend, mut backend_peer) = tokio::io::duplex(256 * 1024);
        let task = tokio::spawn(relay(client, backend, Duration::from_secs(30), counters()));
        let data: Vec<u8> = (0..4 * 1024 * 1024u32).map(|i| (i % 251) as u8).collect();
        let sent = data.clone();
        let writer = tokio::spawn(async move {
            client_peer.write_all(&sent).await.unwrap();
            client_peer.shutdown().await.unwrap();
            client_peer
        });
        let mut got = Vec::new();
        backend_peer.read_to_end(&mut got).await.unwrap();
        assert!(got == data, "relayed bytes differ");
        drop(backend_peer);
        drop(writer.await.unwrap());
        assert_eq!(task.await.unwrap().up, data.len() as u64);
    }

    #[test]
    fn buffers_grow_under_load_and_shrink_when_it_stops() {
        let mut buf = vec![0u8; INITIAL_CHUNK_BYTES];
        let mut len = INITIAL_CHUNK_BYTES;
        while len < MAX_CHUNK_BYTES {
            resize_for_next_read(&mut buf, len);
            len *= 2;
            assert_eq!(buf.len(), len);
        }
        resize_for_next_read(&mut buf, MAX_CHUNK_BYTES);
        assert_eq!(buf.len(), MAX_CHUNK_BYTES, "never beyond the maximum");
        resize_for_next_read(&mut buf, MAX_CHUNK_BYTES / 2);
        assert_eq!(
            buf.len(),
            MAX_CHUNK_BYTES,
            "a half-full read keeps the size"
        );
        resize_for_next_read(&mut buf, 100);
        assert_eq!(buf.len(), INITIAL_CHUNK_BYTES);
        assert!(buf.capacity() < MAX_CHUNK_BYTES);
    }

    #[tokio::test(start_paused = true)]
    async fn closes_an_idle_connection() {
        let (client, _client_peer) = tokio::io::duplex(64);
        let (backend, _backend_peer) = tokio::io::duplex(64);
        let report = relay(client, backend, Duration::from_secs(5), counters()).await;
        assert_eq!(report.outcome, ConnectionOutcome::IdleTimeout);
    }
}
