//! The one HTTP/1.1 path (hyper) of the admin endpoint, the built-in page and `pqgate status`:
//! [`serve_http1`] answers at most one request per connection within [`Limits`] (header-read
//! timeout, head size, total time) and counts the bytes; [`get`] fetches one resource within
//! [`ClientLimits`]; [`reply`] builds the responses.

use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{CONNECTION, CONTENT_TYPE, HOST, HeaderName, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};

/// A response of [`serve_http1`]'s handler: the whole body in memory.
pub(crate) type Reply = Response<Full<Bytes>>;

/// hyper's smallest read buffer; a smaller head cap is enforced on the parsed head.
const MIN_BUF_BYTES: usize = 8192;

/// Bounds of one served connection.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Limits {
    /// The request head must have arrived within this (else the connection is dropped).
    pub header_timeout: Duration,
    /// Largest request head (request line and headers); larger gets `431`.
    pub max_head_bytes: usize,
    /// The whole exchange, reading to closing, ends within this.
    pub total: Duration,
}

/// Bytes that crossed a served connection.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Traffic {
    /// Read from the peer.
    pub read: u64,
    /// Written to the peer.
    pub written: u64,
}

/// Why an HTTP exchange failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub(crate) enum HttpError {
    /// No complete request head within [`Limits::header_timeout`].
    #[error("no complete request head within {0:?}")]
    HeaderTimeout(Duration),
    /// The exchange did not end within its total time.
    #[error("not done within {0:?}")]
    Timeout(Duration),
    /// The connection failed (I/O, or the peer broke HTTP/1.1).
    #[error("HTTP/1.1: {0}")]
    Http(#[source] hyper::Error),
    /// The request could not be built (a path that is no URI).
    #[error("request: {0}")]
    Request(#[source] hyper::http::Error),
    /// Reading the request failed.
    #[error("read: {0}")]
    Read(#[source] io::Error),
    /// The server could not be reached.
    #[error("connect: {0}")]
    Connect(#[source] io::Error),
    /// A response body could not be read whole within the size cap.
    #[error("response body: {0}")]
    Body(#[source] Box<dyn std::error::Error + Send + Sync>),
}

/// A response with `status`, `Content-Type: content_type` and `body` (its length is sent as
/// `Content-Length`).
pub(crate) fn reply(
    status: StatusCode,
    content_type: &'static str,
    body: impl Into<Bytes>,
) -> Reply {
    let mut r = Response::new(Full::new(body.into()));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    r
}

/// `reply` plus the extra `headers`.
pub(crate) fn with_headers(mut r: Reply, headers: &[(HeaderName, &'static str)]) -> Reply {
    for (name, value) in headers {
        r.headers_mut()
            .insert(name.clone(), HeaderValue::from_static(value));
    }
    r
}

/// The request target as the client sent it in origin form (path and query), `""` if none.
pub(crate) fn target<B>(req: &Request<B>) -> &str {
    req.uri().path_and_query().map_or("", |p| p.as_str())
}

/// `405 Method Not Allowed` unless `req` is a `GET`.
pub(crate) fn get_only<B>(req: &Request<B>) -> Option<Reply> {
    (req.method() != Method::GET)
        .then(|| reply(StatusCode::METHOD_NOT_ALLOWED, "text/plain", "GET only\n"))
}

/// Serves one HTTP/1.1 connection: at most one request (no keep-alive), answered by `handler`,
/// then the connection is shut down. A peer that closes before a whole request, or whose
/// request hyper refuses itself (`400`, `431` for a head over [`Limits::max_head_bytes`]),
/// is not an error: the bytes are still counted.
pub(crate) async fn serve_http1<S, F>(
    io: S,
    limits: &Limits,
    handler: F,
) -> Result<Traffic, HttpError>
where
    S: AsyncRead + AsyncWrite + Unpin,
    F: Fn(&Request<Incoming>) -> Reply,
{
    let started = tokio::time::Instant::now();
    let mut counted = Counted {
        inner: io,
        traffic: Traffic::default(),
        first: None,
    };
    // The request's first byte is awaited before hyper is set up: an idle connection then
    // holds neither hyper's connection state nor its 8 KiB read buffer.
    let mut first = [0u8; 1];
    match tokio::time::timeout(limits.header_timeout, counted.inner.read(&mut first)).await {
        Err(_) => return Err(HttpError::HeaderTimeout(limits.header_timeout)),
        Ok(Ok(0)) => return Ok(counted.traffic),
        Ok(Err(e)) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(counted.traffic),
        Ok(Err(e)) => return Err(HttpError::Read(e)),
        Ok(Ok(_)) => counted.first = Some(first[0]),
    }
    let waited = started.elapsed();
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout.saturating_sub(waited))
        .max_header_size(limits.max_head_bytes)
        .max_buf_size(limits.max_head_bytes.max(MIN_BUF_BYTES))
        .keep_alive(false)
        .title_case_headers(true)
        .auto_date_header(false);
    let service =
        hyper::service::service_fn(|req| std::future::ready(Ok::<_, Infallible>(handler(&req))));
    let conn = builder.serve_connection(TokioIo::new(&mut counted), service);
    let done = tokio::time::timeout(limits.total.saturating_sub(waited), conn)
        .await
        .map_err(|_| HttpError::Timeout(limits.total))?;
    match done {
        Ok(()) => Ok(counted.traffic),
        Err(e) if e.is_timeout() => Err(HttpError::HeaderTimeout(limits.header_timeout)),
        Err(e) if e.is_incomplete_message() || e.is_parse() => Ok(counted.traffic),
        Err(e) => Err(HttpError::Http(e)),
    }
}

/// Bounds of one [`get`].
#[derive(Clone, Copy, Debug)]
pub(crate) struct ClientLimits {
    /// To connect.
    pub connect: Duration,
    /// The whole exchange, connecting included.
    pub total: Duration,
    /// Largest response body read.
    pub max_body: usize,
}

/// `GET path` from the HTTP/1.1 server at `addr` (one request, then the connection closes):
/// the status and the whole body.
pub(crate) async fn get(
    addr: SocketAddr,
    path: &str,
    limits: &ClientLimits,
) -> Result<(StatusCode, Bytes), HttpError> {
    tokio::time::timeout(limits.total, get_unbounded(addr, path, limits))
        .await
        .map_err(|_| HttpError::Timeout(limits.total))?
}

async fn get_unbounded(
    addr: SocketAddr,
    path: &str,
    limits: &ClientLimits,
) -> Result<(StatusCode, Bytes), HttpError> {
    let tcp = tokio::time::timeout(limits.connect, tokio::net::TcpStream::connect(addr))
        .await
        .map_err(|_| HttpError::Connect(io::ErrorKind::TimedOut.into()))?
        .map_err(HttpError::Connect)?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
        .await
        .map_err(HttpError::Http)?;
    let req = Request::get(path)
        .header(HOST, addr.to_string())
        .header(CONNECTION, "close")
        .body(http_body_util::Empty::<Bytes>::new())
        .map_err(HttpError::Request)?;
    let exchange = async {
        let res = sender.send_request(req).await.map_err(HttpError::Http)?;
        let status = res.status();
        let body = Limited::new(res.into_body(), limits.max_body)
            .collect()
            .await
            .map_err(HttpError::Body)?;
        Ok((status, body.to_bytes()))
    };
    tokio::pin!(exchange);
    tokio::select! {
        r = &mut exchange => r,
        c = conn => {
            c.map_err(HttpError::Http)?;
            exchange.await
        }
    }
}

/// Counts the bytes through a stream, handing out first the byte [`serve_http1`] read ahead; a
/// read that ends in `UnexpectedEof` (a TLS peer that closed without `close_notify`) reads as a
/// close.
struct Counted<S> {
    inner: S,
    traffic: Traffic,
    first: Option<u8>,
}

impl<S: AsyncRead + Unpin> AsyncRead for Counted<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if buf.remaining() > 0
            && let Some(b) = self.first.take()
        {
            buf.put_slice(&[b]);
            self.traffic.read += 1;
            return Poll::Ready(Ok(()));
        }
        let before = buf.filled().len();
        match Pin::new(&mut self.inner).poll_read(cx, buf) {
            Poll::Ready(Err(e)) if e.kind() == io::ErrorKind::UnexpectedEof => Poll::Ready(Ok(())),
            Poll::Ready(Ok(())) => {
                self.traffic.read += (buf.filled().len() - before) as u64;
                Poll::Ready(Ok(()))
            }
            other => other,
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Counted<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = r {
            self.traffic.written += n as u64;
        }
        r
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if let Poll::Ready(Ok(n)) = r {
            self.traffic.written += n as u64;
        }
        r
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};

    use super::*;

    const LIMITS: Limits = Limits {
        header_timeout: Duration::from_secs(5),
        max_head_bytes: 4096,
        total: Duration::from_secs(10),
    };

    /// `/hello` is 200, anything else 404; non-GET is 405.
    fn hello(req: &Request<Incoming>) -> Reply {
        if let Some(refused) = get_only(req) {
            return refused;
        }
        match target(req) {
            "/hello" => reply(StatusCode::OK, "text/plain", "hi\n"),
            "/big" => reply(StatusCode::OK, "text/plain", vec![b'x'; 1 << 20]),
            _ => reply(StatusCode::NOT_FOUND, "text/plain", "not found\n"),
        }
    }

    /// Sends `request` to a served connection; the whole answer and what serving returned.
    async fn exchange(request: &[u8]) -> (String, Result<Traffic, HttpError>) {
        let (server, mut client) = tokio::io::duplex(64 * 1024);
        let served = tokio::spawn(async move { serve_http1(server, &LIMITS, hello).await });
        client.write_all(request).await.unwrap();
        let mut answer = String::new();
        client.read_to_string(&mut answer).await.unwrap();
        (answer, served.await.unwrap())
    }

    #[tokio::test]
    async fn answers_once_with_length_and_counts_the_bytes() {
        let request = b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n";
        let (answer, served) = exchange(request).await;
        assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{answer}");
        assert!(answer.contains("Content-Type: text/plain\r\n"), "{answer}");
        assert!(answer.contains("Content-Length: 3\r\n"), "{answer}");
        assert!(answer.contains("Connection: close\r\n"), "{answer}");
        assert!(answer.ends_with("\r\n\r\nhi\n"), "{answer}");
        let traffic = served.unwrap();
        assert_eq!(traffic.read, request.len() as u64);
        assert_eq!(traffic.written, answer.len() as u64);
    }

    #[tokio::test]
    async fn a_body_larger_than_the_buffers_goes_out_whole() {
        let (answer, served) = exchange(b"GET /big HTTP/1.1\r\n\r\n").await;
        assert!(answer.contains("Content-Length: 1048576\r\n"));
        assert!(answer.ends_with(&"x".repeat(1 << 20)));
        assert_eq!(served.unwrap().written, answer.len() as u64);
    }

    #[tokio::test]
    async fn unknown_path_is_404_and_wrong_method_405() {
        let (answer, served) = exchange(b"GET /nope HTTP/1.1\r\n\r\n").await;
        assert!(answer.starts_with("HTTP/1.1 404 Not Found\r\n"), "{answer}");
        assert!(answer.ends_with("not found\n"), "{answer}");
        assert!(served.is_ok());
        let (answer, _) = exchange(b"POST /hello HTTP/1.1\r\nContent-Length: 2\r\n\r\nab").await;
        assert!(
            answer.starts_with("HTTP/1.1 405 Method Not Allowed\r\n"),
            "{answer}"
        );
        assert!(answer.ends_with("GET only\n"), "{answer}");
    }

    #[tokio::test]
    async fn oversized_request_head_is_refused_with_431() {
        // Complete but over the cap, and never complete within hyper's buffer: both refused.
        let long = format!("GET /hello HTTP/1.1\r\nX: {}\r\n\r\n", "a".repeat(5000));
        let (answer, served) = exchange(long.as_bytes()).await;
        assert!(answer.starts_with("HTTP/1.1 431 "), "{answer}");
        assert!(!answer.contains("hi\n"), "{answer}");
        assert!(served.is_ok());
        let endless = format!("GET /hello HTTP/1.1\r\nX: {}", "a".repeat(20_000));
        let (answer, _) = exchange(endless.as_bytes()).await;
        assert!(answer.starts_with("HTTP/1.1 431 "), "{answer}");
    }

    #[tokio::test]
    async fn garbage_is_400() {
        let (answer, served) = exchange(b"\x00\x01 nonsense\r\n\r\n").await;
        assert!(answer.starts_with("HTTP/1.1 400 "), "{answer}");
        assert!(served.is_ok());
    }

    #[tokio::test(start_paused = true)]
    async fn slow_header_read_times_out() {
        let (server, mut client): (DuplexStream, DuplexStream) = tokio::io::duplex(1024);
        let served = tokio::spawn(async move { serve_http1(server, &LIMITS, hello).await });
        client
            .write_all(b"GET /hello HTTP/1.1\r\nHo")
            .await
            .unwrap();
        let started = tokio::time::Instant::now();
        let r = served.await.unwrap();
        assert!(matches!(r, Err(HttpError::HeaderTimeout(_))), "{r:?}");
        assert!(started.elapsed() >= LIMITS.header_timeout);
        let mut rest = Vec::new();
        client.read_to_end(&mut rest).await.unwrap();
        assert!(rest.is_empty(), "no answer after a timeout");
    }

    #[tokio::test(start_paused = true)]
    async fn a_silent_peer_times_out_and_a_late_head_shares_the_budget() {
        // Nothing at all: the wait for the first byte ends at the header timeout.
        let (server, _client) = tokio::io::duplex(1024);
        let started = tokio::time::Instant::now();
        let r = serve_http1(server, &LIMITS, hello).await;
        assert!(matches!(r, Err(HttpError::HeaderTimeout(_))), "{r:?}");
        assert!(started.elapsed() >= LIMITS.header_timeout);
        assert!(started.elapsed() < LIMITS.header_timeout * 2);
        // One byte just before the deadline, the rest never: the head's timeout is what was
        // left of the header budget, not a fresh one.
        let (server, mut client) = tokio::io::duplex(1024);
        let served = tokio::spawn(async move { serve_http1(server, &LIMITS, hello).await });
        let started = tokio::time::Instant::now();
        tokio::time::sleep(LIMITS.header_timeout.mul_f64(0.9)).await;
        client.write_all(b"G").await.unwrap();
        let r = served.await.unwrap();
        assert!(matches!(r, Err(HttpError::HeaderTimeout(_))), "{r:?}");
        assert!(
            started.elapsed() < LIMITS.header_timeout.mul_f64(1.5),
            "{:?}",
            started.elapsed()
        );
    }

    #[tokio::test]
    async fn a_peer_that_leaves_without_a_request_is_no_error() {
        let (server, client) = tokio::io::duplex(1024);
        drop(client);
        assert_eq!(
            serve_http1(server, &LIMITS, hello).await.unwrap(),
            Traffic::default()
        );
    }

    #[tokio::test]
    async fn get_fetches_status_and_body_within_the_cap() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            for _ in 0..3 {
                let (s, _) = listener.accept().await.unwrap();
                let _ = serve_http1(s, &LIMITS, hello).await;
            }
        });
        let limits = ClientLimits {
            connect: Duration::from_secs(5),
            total: Duration::from_secs(10),
            max_body: 1024,
        };
        let (status, body) = get(addr, "/hello", &limits).await.unwrap();
        assert_eq!((status, &body[..]), (StatusCode::OK, &b"hi\n"[..]));
        let (status, _) = get(addr, "/other", &limits).await.unwrap();
        assert_eq!(status, StatusCode::NOT_FOUND);
        let tiny = ClientLimits {
            max_body: 2,
            ..limits
        };
        let r = get(addr, "/hello", &tiny).await;
        assert!(matches!(r, Err(HttpError::Body(_))), "{r:?}");
    }
}
