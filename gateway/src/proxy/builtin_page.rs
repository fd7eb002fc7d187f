//! The built-in backend: a small HTTP/1.1 page (or JSON at `/info.json`) that tells the client
//! what its TLS session negotiated. One request per connection.

use std::io;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::tls::SessionFacts;

/// Largest request head read; anything longer gets 431.
const MAX_HEAD_BYTES: usize = 8 * 1024;

/// What the page reports besides the session facts.
pub struct PageContext<'a> {
    /// Listener name.
    pub listener: &'a str,
    /// Server name the client sent.
    pub sni: Option<&'a str>,
}

/// Reads one request and answers it; returns (bytes read, bytes written).
pub async fn serve<S>(
    stream: &mut S,
    facts: &SessionFacts,
    ctx: &PageContext<'_>,
    timeout: Duration,
) -> io::Result<(u64, u64)>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let head = tokio::time::timeout(timeout, read_head(stream))
        .await
        .map_err(|_| io::Error::from(io::ErrorKind::TimedOut))??;
    let head = match head {
        Head::Complete(h) => Some(h),
        Head::TooLong => None,
        // A browser's speculative connection that never sent a request.
        Head::Closed => return Ok((0, 0)),
    };
    let response = match head.as_deref().and_then(request_path) {
        None => respond(
            "431 Request Header Fields Too Large",
            "text/plain",
            "bad request\n",
        ),
        Some("/info.json") => respond("200 OK", "application/json", &json(facts, ctx)),
        Some(_) => respond("200 OK", "text/html; charset=utf-8", &html(facts, ctx)),
    };
    stream.write_all(response.as_bytes()).await?;
    stream.shutdown().await?;
    let read = head.as_ref().map_or(MAX_HEAD_BYTES, Vec::len);
    Ok((read as u64, response.len() as u64))
}

/// What arrived of a request head.
enum Head {
    /// Up to and including the blank line.
    Complete(Vec<u8>),
    /// More than [`MAX_HEAD_BYTES`] without a blank line.
    TooLong,
    /// The client closed before a complete head.
    Closed,
}

/// Reads up to the end of the request head.
async fn read_head<S: AsyncRead + Unpin>(stream: &mut S) -> io::Result<Head> {
    let mut head = Vec::with_capacity(1024);
    let mut buf = [0u8; 1024];
    while head.len() < MAX_HEAD_BYTES {
        let n = match stream.read(&mut buf).await {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => 0,
            Err(e) => return Err(e),
        };
        if n == 0 {
            return Ok(Head::Closed);
        }
        head.extend_from_slice(&buf[..n]);
        if head.windows(4).any(|w| w == b"\r\n\r\n") {
            return Ok(Head::Complete(head));
        }
    }
    Ok(Head::TooLong)
}

fn request_path(head: &[u8]) -> Option<&str> {
    let line = head.split(|&b| b == b'\r').next()?;
    let line = std::str::from_utf8(line).ok()?;
    let mut parts = line.split(' ');
    let _method = parts.next()?;
    parts.next()
}

fn respond(status: &str, content_type: &str, body: &str) -> String {
    format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\
         Cache-Control: no-store\r\nConnection: close\r\nServer: pqgate\r\n\r\n{body}",
        body.len()
    )
}

fn escape(text: &str) -> String {
    text.chars()
        .map(|c| match c {
            '<' => "&lt;".to_owned(),
            '>' => "&gt;".to_owned(),
            '&' => "&amp;".to_owned(),
            '"' => "&quot;".to_owned(),
            '\'' => "&#39;".to_owned(),
            c => c.to_string(),
        })
        .collect()
}

fn json_string(text: &str) -> String {
    let mut out = String::from("\"");
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if u32::from(c) < 0x20 => out.push_str(&format!("\\u{:04x}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn alpn_text(facts: &SessionFacts) -> String {
    facts.alpn.as_deref().map_or_else(
        || "none".to_owned(),
        |a| String::from_utf8_lossy(a).into_owned(),
    )
}

fn json(facts: &SessionFacts, ctx: &PageContext<'_>) -> String {
    format!(
        "{{\"listener\":{},\"protocol\":{},\"cipher_suite\":{},\"key_exchange_group\":{},\
         \"post_quantum\":{},\"alpn\":{},\"sni\":{},\"client_certificate\":{}}}\n",
        json_string(ctx.listener),
        json_string(facts.version),
        json_string(facts.suite),
        json_string(facts.group),
        facts.post_quantum,
        json_string(&alpn_text(facts)),
        ctx.sni.map_or_else(|| "null".to_owned(), json_string),
        facts.peer_cert,
    )
}

fn html(facts: &SessionFacts, ctx: &PageContext<'_>) -> String {
    let verdict = if facts.post_quantum {
        "Post-quantum: yes. This session's key exchange resists a quantum adversary."
    } else {
        "Post-quantum: NO. This session used classical key exchange only."
    };
    let rows = [
        ("Protocol", facts.version.to_owned()),
        ("Cipher suite", facts.suite.to_owned()),
        ("Key exchange group", facts.group.to_owned()),
        (
            "Post-quantum",
            if facts.post_quantum { "yes" } else { "no" }.to_owned(),
        ),
        ("ALPN", alpn_text(facts)),
        ("Server name (SNI)", ctx.sni.unwrap_or("none").to_owned()),
        ("Listener", ctx.listener.to_owned()),
    ];
    let table: String = rows
        .iter()
        .map(|(k, v)| {
            format!(
                "<tr><th>{k}</th><td id=\"{}\">{}</td></tr>\n",
                slug(k),
                escape(v)
            )
        })
        .collect();
    format!(
        "<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>pqgate: {group}</title>\
         <style>body{{font-family:sans-serif;margin:2em}}th{{text-align:left;padding-right:1em}}\
         </style></head>\n<body><h1>pqgate</h1>\n<p id=\"verdict\">{verdict}</p>\n<table>\n{table}\
         </table>\n</body></html>\n",
        group = escape(facts.group),
    )
}

fn slug(label: &str) -> String {
    label
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == ' ')
        .map(|c| {
            if c == ' ' {
                '-'
            } else {
                c.to_ascii_lowercase()
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts() -> SessionFacts {
        SessionFacts {
            version: "TLSv1.3",
            suite: "TLS13_AES_256_GCM_SHA384",
            group: "X25519MLKEM768",
            post_quantum: true,
            alpn: None,
            peer_cert: false,
        }
    }

    #[tokio::test]
    async fn answers_with_the_negotiated_group_and_escapes_sni() {
        let (mut server, mut client) = tokio::io::duplex(64 * 1024);
        client
            .write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let ctx = PageContext {
            listener: "default",
            sni: Some("<script>"),
        };
        serve(&mut server, &facts(), &ctx, Duration::from_secs(5))
            .await
            .unwrap();
        let mut page = String::new();
        client.read_to_string(&mut page).await.unwrap();
        assert!(page.starts_with("HTTP/1.1 200 OK\r\n"));
        assert!(page.contains("<td id=\"key-exchange-group\">X25519MLKEM768</td>"));
        assert!(page.contains("&lt;script&gt;"));
        assert!(!page.contains("<script>"));
    }

    #[tokio::test]
    async fn json_endpoint() {
        let (mut server, mut client) = tokio::io::duplex(64 * 1024);
        client
            .write_all(b"GET /info.json HTTP/1.1\r\n\r\n")
            .await
            .unwrap();
        let ctx = PageContext {
            listener: "l",
            sni: None,
        };
        serve(&mut server, &facts(), &ctx, Duration::from_secs(5))
            .await
            .unwrap();
        let mut page = String::new();
        client.read_to_string(&mut page).await.unwrap();
        assert!(page.contains("\"key_exchange_group\":\"X25519MLKEM768\",\"post_quantum\":true"));
        assert!(page.contains("\"sni\":null"));
    }
}
