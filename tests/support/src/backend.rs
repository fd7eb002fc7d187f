//! Small TCP backends on 127.0.0.1 for the gateways under test (echo, a fixed tag, a SHA-256
//! of everything received), and the deterministic byte stream the transfers send.

use std::net::SocketAddr;

use aws_lc_rs::digest::{Context, SHA256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// An echo backend on 127.0.0.1: each connection gets its bytes back, optionally after
/// capturing the first `capture` bytes (for PROXY headers) into the returned channel.
pub async fn echo_backend() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            tokio::spawn(async move {
                let (mut r, mut w) = s.split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
                let _ = w.shutdown().await;
            });
        }
    });
    addr
}

/// A backend that replies with a fixed tag and closes: tells which backend a route reached.
pub async fn tag_backend(tag: &'static str) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = [0u8; 64];
                let _ = s.read(&mut buf).await;
                let _ = s.write_all(tag.as_bytes()).await;
                let _ = s.shutdown().await;
            });
        }
    });
    addr
}

/// A backend that hashes everything it receives and, after the client's FIN, replies with the
/// 32-byte SHA-256 digest (so the reply proves the half-close crossed the gateways). A read
/// error closes the connection without a digest.
pub async fn hashing_backend() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(hashing_server(listener));
    addr
}

/// Serves [`hashing_backend`]'s connections on `listener` (for a test that binds it itself).
pub async fn hashing_server(listener: TcpListener) {
    while let Ok((mut s, _)) = listener.accept().await {
        tokio::spawn(async move {
            let mut ctx = Context::new(&SHA256);
            let mut buf = vec![0u8; 64 * 1024];
            loop {
                match s.read(&mut buf).await {
                    Ok(0) => break,
                    Ok(n) => ctx.update(&buf[..n]),
                    Err(_) => return,
                }
            }
            let _ = s.write_all(ctx.finish().as_ref()).await;
            let _ = s.shutdown().await;
        });
    }
}

/// Fills `buf` from a deterministic byte stream (xorshift64 from `state`), so both ends of a
/// transfer agree without storing it.
pub fn fill(state: &mut u64, buf: &mut [u8]) {
    for chunk in buf.chunks_mut(8) {
        *state ^= *state << 13;
        *state ^= *state >> 7;
        *state ^= *state << 17;
        let bytes = state.to_le_bytes();
        chunk.copy_from_slice(&bytes[..chunk.len()]);
    }
}
