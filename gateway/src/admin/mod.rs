//! The admin endpoint: `GET /metrics` (Prometheus text), `GET /healthz` (200 while serving,
//! 503 while draining) and `GET /status` (the PQ PSK channels as JSON). A deliberately tiny HTTP/1.1 responder with bounded reads and connections.

pub mod telemetry;

use std::sync::Arc;
use std::time::Duration;

use metrics_exporter_prometheus::PrometheusHandle;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};

use crate::proxy::drain::DrainState;

/// Admin connections served at once; more wait in the kernel backlog.
const MAX_ADMIN_CONNECTIONS: usize = 32;
/// Largest admin request head.
const MAX_HEAD_BYTES: usize = 4096;
/// A scraper must send its request within this.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// Renders the `GET /status` body (JSON).
pub type StatusFn = Arc<dyn Fn() -> serde_json::Value + Send + Sync>;

/// Serves the admin endpoint until `stop` turns true.
pub async fn serve(
    listener: TcpListener,
    metrics: PrometheusHandle,
    shared: Arc<DrainState>,
    status: StatusFn,
    mut stop: watch::Receiver<bool>,
) {
    let slots = Arc::new(Semaphore::new(MAX_ADMIN_CONNECTIONS));
    loop {
        let permit = tokio::select! {
            p = slots.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => return },
            _ = stop.changed() => return,
        };
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    tracing::warn!(error = %e, "admin accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            _ = stop.changed() => return,
        };
        let (metrics, shared, status) = (metrics.clone(), shared.clone(), status.clone());
        tokio::spawn(async move {
            let _permit = permit;
            let answered = answer(stream, &metrics, &shared, &status);
            let _ = tokio::time::timeout(REQUEST_TIMEOUT, answered).await;
        });
    }
}

async fn answer(
    mut stream: TcpStream,
    metrics: &PrometheusHandle,
    shared: &DrainState,
    status: &StatusFn,
) -> std::io::Result<()> {
    let mut head = Vec::with_capacity(512);
    let mut buf = [0u8; 512];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        if head.len() > MAX_HEAD_BYTES {
            return reply(
                &mut stream,
                "431 Request Header Fields Too Large",
                "text/plain",
                "",
            )
            .await;
        }
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            return Ok(());
        }
        head.extend_from_slice(&buf[..n]);
    }
    let line = head.split(|&b| b == b'\r').next().unwrap_or_default();
    let mut parts = line.split(|&b| b == b' ');
    let (method, path) = (
        parts.next().unwrap_or_default(),
        parts.next().unwrap_or_default(),
    );
    if method != b"GET" {
        return reply(
            &mut stream,
            "405 Method Not Allowed",
            "text/plain",
            "GET only\n",
        )
        .await;
    }
    match path {
        b"/metrics" => {
            let text = metrics.render();
            reply(&mut stream, "200 OK", "text/plain; version=0.0.4", &text).await
        }
        b"/healthz" if shared.is_draining() => {
            reply(
                &mut stream,
                "503 Service Unavailable",
                "text/plain",
                "draining\n",
            )
            .await
        }
        b"/healthz" => reply(&mut stream, "200 OK", "text/plain", "ok\n").await,
        b"/status" => {
            let body = format!("{}\n", status());
            reply(&mut stream, "200 OK", "application/json", &body).await
        }
        _ => reply(&mut stream, "404 Not Found", "text/plain", "not found\n").await,
    }
}

async fn reply(
    stream: &mut TcpStream,
    status: &str,
    content_type: &str,
    body: &str,
) -> std::io::Result<()> {
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(body.as_bytes()).await?;
    stream.shutdown().await
}
