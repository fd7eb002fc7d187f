//! The admin endpoint: `GET /metrics` (Prometheus text), `GET /healthz` (200 while serving,
//! 503 while draining) and `GET /status` (the PQ PSK channels as JSON); anything else is 405
//! (not a GET) or 404. One request per connection over [`http::serve_http1`], at most 32
//! at once, each bounded in head size and time.

pub(crate) mod http;
pub(crate) mod telemetry;

use std::sync::Arc;
use std::time::Duration;

use hyper::body::Incoming;
use hyper::{Request, StatusCode};
use metrics_exporter_prometheus::PrometheusHandle;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};

use self::http::{Limits, Reply, reply};
use crate::proxy::drain::DrainState;

/// Admin connections served at once; more wait in the kernel backlog.
const MAX_ADMIN_CONNECTIONS: usize = 32;
/// A scraper sends its request (head at most 4 KiB) and is answered within 5 s.
const LIMITS: Limits = Limits {
    header_timeout: Duration::from_secs(5),
    max_head_bytes: 4096,
    total: Duration::from_secs(5),
};

/// Renders the `GET /status` body (JSON).
pub(crate) type StatusFn = Arc<dyn Fn() -> serde_json::Value + Send + Sync>;

/// Serves the admin endpoint until `stop` turns true.
pub(crate) async fn serve(
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
            let handler = |req: &Request<Incoming>| answer(req, &metrics, &shared, &status);
            let _ = http::serve_http1(stream, &LIMITS, handler).await;
        });
    }
}

/// The admin answer to `req`.
fn answer(
    req: &Request<Incoming>,
    metrics: &PrometheusHandle,
    shared: &DrainState,
    status: &StatusFn,
) -> Reply {
    if let Some(refused) = http::get_only(req) {
        return refused;
    }
    match http::target(req) {
        "/metrics" => reply(
            StatusCode::OK,
            "text/plain; version=0.0.4",
            metrics.render(),
        ),
        "/healthz" if shared.is_draining() => {
            reply(StatusCode::SERVICE_UNAVAILABLE, "text/plain", "draining\n")
        }
        "/healthz" => reply(StatusCode::OK, "text/plain", "ok\n"),
        "/status" => reply(
            StatusCode::OK,
            "application/json",
            format!("{}\n", status()),
        ),
        _ => reply(StatusCode::NOT_FOUND, "text/plain", "not found\n"),
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    async fn ask(addr: std::net::SocketAddr, request: &str) -> String {
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        s.write_all(request.as_bytes()).await.unwrap();
        let mut answer = String::new();
        s.read_to_string(&mut answer).await.unwrap();
        answer
    }

    #[tokio::test]
    async fn routes_and_bodies() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let metrics = metrics_exporter_prometheus::PrometheusBuilder::new()
            .build_recorder()
            .handle();
        let shared = Arc::new(DrainState::default());
        let status: StatusFn = Arc::new(|| serde_json::json!({"interfaces": []}));
        let (stop_tx, stop) = watch::channel(false);
        let server = tokio::spawn(serve(listener, metrics, shared.clone(), status, stop));

        // No `Connection: close`: the answer still ends the connection.
        let health = ask(addr, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").await;
        assert!(health.starts_with("HTTP/1.1 200 OK\r\n"), "{health}");
        assert!(health.ends_with("\r\n\r\nok\n"), "{health}");
        let status = ask(addr, "GET /status HTTP/1.1\r\n\r\n").await;
        assert!(
            status.contains("Content-Type: application/json\r\n"),
            "{status}"
        );
        assert!(
            status.ends_with("\r\n\r\n{\"interfaces\":[]}\n"),
            "{status}"
        );
        let metrics = ask(addr, "GET /metrics HTTP/1.1\r\n\r\n").await;
        assert!(
            metrics.contains("Content-Type: text/plain; version=0.0.4\r\n"),
            "{metrics}"
        );
        let missing = ask(addr, "GET /metrics?x=1 HTTP/1.1\r\n\r\n").await;
        assert!(
            missing.starts_with("HTTP/1.1 404 Not Found\r\n"),
            "{missing}"
        );
        let post = ask(addr, "POST /healthz HTTP/1.1\r\n\r\n").await;
        assert!(
            post.starts_with("HTTP/1.1 405 Method Not Allowed\r\n"),
            "{post}"
        );
        shared.start_draining();
        let health = ask(addr, "GET /healthz HTTP/1.1\r\n\r\n").await;
        assert!(
            health.starts_with("HTTP/1.1 503 Service Unavailable\r\n"),
            "{health}"
        );
        assert!(health.ends_with("\r\n\r\ndraining\n"), "{health}");

        stop_tx.send(true).unwrap();
        server.await.unwrap();
    }
}
