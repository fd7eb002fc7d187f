//! Test harness: a throwaway PKI, free loopback ports, a pqgate process per test (killed on drop,
//! its log kept for failure messages), TLS clients with chosen groups, and small TCP backends.
#![allow(dead_code)]

pub mod netns;
pub mod sys;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener as StdListener, TcpStream as StdStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, SignatureAlgorithm,
};
use rustls::crypto::{CryptoProvider, SupportedKxGroup, aws_lc_rs};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, RootCertStore};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

/// Upper bound for waiting on a gateway to come up (debug build, loaded CI machine).
pub const START_TIMEOUT: Duration = Duration::from_secs(30);

/// A port on 127.0.0.1 that was free a moment ago. Taken below the kernel's ephemeral range
/// (32768 and up), so client sockets of concurrent tests cannot grab it before pqgate binds it,
/// and spread by process id so test binaries do not walk the same sequence.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    const BASE: u32 = 20_000;
    const SPAN: u32 = 12_000;
    let seed = std::process::id().wrapping_mul(7_919);
    for _ in 0..SPAN {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let port = (BASE + seed.wrapping_add(n) % SPAN) as u16;
        if StdListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free port in {BASE}..{}", BASE + SPAN);
}

/// A CA and what it issued, written as PEM files into a directory.
pub struct Pki {
    pub dir: PathBuf,
    issuer: Issuer<'static, KeyPair>,
    pub ca_pem: String,
}

/// A leaf certificate's files.
pub struct Leaf {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub cert_der: CertificateDer<'static>,
}

impl Pki {
    /// A new ECDSA P-256 CA named `name`, its certificate written to `dir/NAME-ca.pem`.
    pub fn new(dir: &Path, name: &str) -> Self {
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(DnType::CommonName, format!("{name} test CA"));
        let cert = params.self_signed(&key).unwrap();
        let ca_pem = cert.pem();
        std::fs::write(dir.join(format!("{name}-ca.pem")), &ca_pem).unwrap();
        Self {
            dir: dir.to_owned(),
            issuer: Issuer::new(params, key),
            ca_pem,
        }
    }

    pub fn ca_path(&self, name: &str) -> PathBuf {
        self.dir.join(format!("{name}-ca.pem"))
    }

    /// Issues a leaf for `names` with key algorithm `alg`, written as `file-cert.pem`/`-key.pem`.
    pub fn issue(&self, file: &str, names: &[&str], alg: &'static SignatureAlgorithm) -> Leaf {
        self.issue_with_key(file, names, KeyPair::generate_for(alg).unwrap())
    }

    /// Issues a leaf for `names` with a given key pair.
    pub fn issue_with_key(&self, file: &str, names: &[&str], key: KeyPair) -> Leaf {
        let names: Vec<String> = names.iter().map(|s| s.to_string()).collect();
        let mut params = CertificateParams::new(names).unwrap();
        params.distinguished_name.push(DnType::CommonName, file);
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        let leaf = Leaf {
            cert: self.dir.join(format!("{file}-cert.pem")),
            key: self.dir.join(format!("{file}-key.pem")),
            cert_der: cert.der().clone(),
        };
        std::fs::write(&leaf.cert, cert.pem()).unwrap();
        std::fs::write(&leaf.key, key.serialize_pem()).unwrap();
        leaf
    }

    /// An ECDSA P-256 server certificate for localhost and 127.0.0.1.
    pub fn server(&self, file: &str) -> Leaf {
        self.issue(
            file,
            &["localhost", "127.0.0.1"],
            &rcgen::PKCS_ECDSA_P256_SHA256,
        )
    }

    pub fn roots(&self) -> Arc<RootCertStore> {
        let mut roots = RootCertStore::empty();
        for c in CertificateDer::pem_slice_iter(self.ca_pem.as_bytes()) {
            roots.add(c.unwrap()).unwrap();
        }
        Arc::new(roots)
    }
}

/// A running pqgate process.
pub struct Gateway {
    child: Child,
    pub admin: SocketAddr,
    pub config: PathBuf,
    pub log: PathBuf,
}

impl Gateway {
    /// Writes `config` to `dir/name.toml`, starts `pqgate run -c` on it, and waits for
    /// `/healthz` on `admin`.
    pub fn start(dir: &Path, name: &str, config: &str, admin: SocketAddr) -> Self {
        Self::start_with_env(dir, name, config, admin, &[])
    }

    /// Like [`Gateway::start`], with extra environment variables.
    pub fn start_with_env(
        dir: &Path,
        name: &str,
        config: &str,
        admin: SocketAddr,
        env: &[(&str, &str)],
    ) -> Self {
        let path = dir.join(format!("{name}.toml"));
        std::fs::write(&path, config).unwrap();
        let log = dir.join(format!("{name}.log"));
        let child = Command::new(env!("CARGO_BIN_EXE_pqgate"))
            .args(["run", "-c"])
            .arg(&path)
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("spawning pqgate");
        let mut gw = Self {
            child,
            admin,
            config: path,
            log,
        };
        gw.wait_healthy();
        gw
    }

    fn wait_healthy(&mut self) {
        let deadline = Instant::now() + START_TIMEOUT;
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!(
                    "pqgate exited with {status} during start:\n{}",
                    self.log_text()
                );
            }
            if http_get(self.admin, "/healthz").is_some_and(|r| r.starts_with("HTTP/1.1 200")) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("pqgate did not become healthy:\n{}", self.log_text());
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    pub fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .args([&format!("-{sig}"), &self.pid().to_string()])
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill -{sig} failed");
    }

    /// Waits (bounded) for the process to exit and returns whether it exited successfully.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<bool> {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Some(status.success());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }

    pub fn metrics(&self) -> String {
        http_get(self.admin, "/metrics").unwrap_or_default()
    }

    /// The value of the first metric line that starts with `prefix` (name and labels).
    pub fn metric(&self, prefix: &str) -> f64 {
        metric_value(&self.metrics(), prefix)
    }

    /// Polls until the log contains `needle` (bounded); true if it did.
    pub fn wait_log(&self, needle: &str, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if self.log_text().contains(needle) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    }

    /// RSS of the process in KiB.
    pub fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap()
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Sums the values of every metric line starting with `prefix` (0 if none).
pub fn metric_value(text: &str, prefix: &str) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(prefix))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// A plain HTTP/1.1 GET on loopback; the whole response, or None if nothing answered.
pub fn http_get(addr: SocketAddr, path: &str) -> Option<String> {
    let mut s = StdStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    Some(out)
}

/// A provider whose only groups are `groups`.
pub fn provider_with(groups: &[&'static dyn SupportedKxGroup]) -> Arc<CryptoProvider> {
    Arc::new(CryptoProvider {
        kx_groups: groups.to_vec(),
        ..aws_lc_rs::default_provider()
    })
}

/// Classical-only groups, as OpenSSL 3.0 or curl would offer.
pub fn classical() -> Arc<CryptoProvider> {
    provider_with(&[aws_lc_rs::kx_group::X25519, aws_lc_rs::kx_group::SECP256R1])
}

/// A hybrid-first client, as Chromium would offer.
pub fn hybrid_first() -> Arc<CryptoProvider> {
    provider_with(&[
        aws_lc_rs::kx_group::X25519MLKEM768,
        aws_lc_rs::kx_group::X25519,
    ])
}

/// A TLS 1.3 client config trusting `roots`, optionally with a client certificate.
pub fn client_config(
    provider: Arc<CryptoProvider>,
    roots: Arc<RootCertStore>,
    client: Option<&Leaf>,
) -> Arc<ClientConfig> {
    let builder = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_root_certificates(roots);
    let config = match client {
        Some(leaf) => {
            let chain = CertificateDer::pem_file_iter(&leaf.cert)
                .unwrap()
                .collect::<Result<Vec<_>, _>>()
                .unwrap();
            let key = PrivateKeyDer::from_pem_file(&leaf.key).unwrap();
            builder.with_client_auth_cert(chain, key).unwrap()
        }
        None => builder.with_no_client_auth(),
    };
    Arc::new(config)
}

/// Connects and completes a TLS handshake with `server_name`.
pub async fn tls_connect(
    addr: SocketAddr,
    config: Arc<ClientConfig>,
    server_name: &str,
) -> std::io::Result<TlsStream<TcpStream>> {
    let tcp = TcpStream::connect(addr).await?;
    let name = ServerName::try_from(server_name.to_owned()).unwrap();
    TlsConnector::from(config).connect(name, tcp).await
}

/// Completes a handshake, sends `request`, half-closes (close_notify) and reads to the end;
/// TLS errors (alerts) surface on the read.
pub async fn exchange(
    addr: SocketAddr,
    config: Arc<ClientConfig>,
    server_name: &str,
    request: &[u8],
) -> std::io::Result<(Vec<u8>, Option<rustls::NamedGroup>)> {
    let mut tls = tls_connect(addr, config, server_name).await?;
    let group = tls
        .get_ref()
        .1
        .negotiated_key_exchange_group()
        .map(|g| g.name());
    tls.write_all(request).await?;
    tls.shutdown().await?;
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match tls.read(&mut buf).await {
            Ok(0) => break,
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => break,
            Err(e) => return Err(e),
        }
    }
    Ok((out, group))
}

/// An echo backend on 127.0.0.1: each connection gets its bytes back, optionally after
/// capturing the first `capture` bytes (for PROXY headers) into the returned channel.
pub async fn echo_backend() -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
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
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
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

/// TOML for one listener (the caller appends extra keys and sub-tables).
pub fn listener_toml(name: &str, port: u16, backend: &str, leaf: &Leaf, policy: &str) -> String {
    format!(
        "[[listener]]\nname = \"{name}\"\nlisten = \"127.0.0.1:{port}\"\nbackend = \"{backend}\"\n\
         policy = \"{policy}\"\ncert = \"{}\"\nkey = \"{}\"\n",
        leaf.cert.display(),
        leaf.key.display()
    )
}

/// The `[admin]` and `[log]` sections for a test gateway.
pub fn admin_toml(admin: SocketAddr) -> String {
    format!(
        "[log]\nlevel = \"info\"\n\n[admin]\nlisten = \"{admin}\"\n\n[service]\ndrain_timeout_secs = 5\n\n"
    )
}

pub fn admin_addr() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], free_port()))
}

/// Reads a TLS stream to its end; an alert or reset is an error.
pub async fn read_to_end(tls: &mut TlsStream<TcpStream>) -> std::io::Result<Vec<u8>> {
    let mut out = Vec::new();
    tls.read_to_end(&mut out).await?;
    Ok(out)
}

/// The SM4 plugin library cargo built next to the pqgate binary.
pub fn sm4_plugin() -> PathBuf {
    let bin = PathBuf::from(env!("CARGO_BIN_EXE_pqgate"));
    let lib = bin
        .parent()
        .expect("target dir")
        .join("libpqgate_plugin_sm4.so");
    assert!(
        lib.exists(),
        "{} missing: build the workspace first (cargo build --workspace; tests/run-all.sh does)",
        lib.display()
    );
    lib
}
