//! The built-in backend: a small HTTP/1.1 page (or JSON at `/info.json`) that tells the client
//! what its TLS session negotiated, whatever the method. One request per connection, over
//! [`crate::admin::http::serve_http1`].

use std::time::Duration;

use hyper::StatusCode;
use hyper::header::{CACHE_CONTROL, SERVER};
use tokio::io::{AsyncRead, AsyncWrite};

use crate::admin::http::{self, HttpError, Limits, Traffic, reply};
use crate::tls::SessionFacts;

/// Largest request head read; anything longer gets 431.
const MAX_HEAD_BYTES: usize = 8 * 1024;

/// What the page reports besides the session facts.
pub(crate) struct PageContext<'a> {
    /// Listener name.
    pub listener: &'a str,
    /// Server name the client sent.
    pub sni: Option<&'a str>,
}

/// Reads one request and answers it (the request head must arrive within `timeout`, the
/// answer be written within as long again); returns the bytes read and written.
pub(crate) async fn serve<S>(
    stream: &mut S,
    facts: &SessionFacts,
    ctx: &PageContext<'_>,
    timeout: Duration,
) -> Result<Traffic, HttpError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let limits = Limits {
        header_timeout: timeout,
        max_head_bytes: MAX_HEAD_BYTES,
        total: timeout.saturating_mul(2),
    };
    http::serve_http1(stream, &limits, |req| {
        let page = match http::target(req) {
            "/info.json" => reply(StatusCode::OK, "application/json", json(facts, ctx)),
            _ => reply(StatusCode::OK, "text/html; charset=utf-8", html(facts, ctx)),
        };
        http::with_headers(page, &[(CACHE_CONTROL, "no-store"), (SERVER, "pqgate")])
    })
    .await
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
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

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
        let traffic = serve(&mut server, &facts(), &ctx, Duration::from_secs(5))
            .await
            .unwrap();
        let mut page = String::new();
        client.read_to_string(&mut page).await.unwrap();
        assert!(page.starts_with("HTTP/1.1 200 OK\r\n"));
        assert!(
            page.contains("Content-Type: text/html; charset=utf-8\r\n"),
            "{page}"
        );
        assert!(page.contains("Cache-Control: no-store\r\n"), "{page}");
        assert!(page.contains("Server: pqgate\r\n"), "{page}");
        assert_eq!(traffic.read, 27);
        assert_eq!(traffic.written, page.len() as u64);
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
