//! Load generator for `benches/run.sh`: full TLS 1.3 handshakes per second, a bulk source and
//! sink, and idle TLS connections held open. It reads the CPU time (utime + stime) and RSS of the
//! server processes it is given from /proc, over exactly its own measurement window, and prints
//! one `RESULT key=value ...` line for the script to parse.
//!
//! Bench-only shortcuts, all on the client side so that one client core can outrun one server
//! core; the server still does all of its real work on every handshake:
//! - the certificate chain is not checked: exactly the certificate given with `--cert` is
//!   accepted (byte-equal), and the server's handshake signature is verified with it on one
//!   handshake in `--verify-every` (default: every one);
//! - the client's key share (X25519, or X25519 + ML-KEM-768) is generated once and offered on
//!   every handshake (the server still generates a fresh ephemeral key / encapsulates each time).

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use ::aws_lc_rs::{agreement, kem};
use anyhow::{Context, bail};
use clap::{Parser, Subcommand, ValueEnum};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::{ClientConfig, Resumption};
use rustls::crypto::{
    ActiveKeyExchange, CryptoProvider, SharedSecret, SupportedKxGroup, WebPkiSupportedAlgorithms,
    aws_lc_rs,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{
    CertificateError, DigitallySignedStruct, NamedGroup, PeerMisbehaved, ProtocolVersion,
    SignatureScheme,
};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;
use tokio::time::timeout;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

/// Upper bound for one connection attempt (connect + handshake + close).
const CONN_TIMEOUT: Duration = Duration::from_secs(10);
/// Bytes per write/read in the bulk source and sink.
const BULK_CHUNK: usize = 256 * 1024;

#[derive(Parser)]
#[command(about = "pqgate benchmark load generator")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
enum Groups {
    /// X25519MLKEM768 (plus the other hybrids pqgate's hybrid-required policy lists).
    Hybrid,
    /// X25519 only, like OpenSSL 3.0 clients.
    Classical,
}

#[derive(Clone, Copy, ValueEnum)]
enum Suites {
    /// The provider's TLS 1.3 suites (the server picks; AES-256-GCM-SHA384 for pqgate and nginx).
    Default,
    /// Only TLS13_AES_128_GCM_SHA256.
    Aes128,
}

/// TLS client options shared by `handshakes` and `idle`.
#[derive(clap::Args)]
struct TlsArgs {
    /// Server address.
    #[arg(long)]
    addr: SocketAddr,
    /// Key-exchange groups to offer.
    #[arg(long, value_enum)]
    groups: Groups,
    /// The server's certificate (PEM); the only one accepted.
    #[arg(long)]
    cert: PathBuf,
    /// SNI to send.
    #[arg(long, default_value = "localhost")]
    server_name: String,
    /// TLS 1.3 cipher suites to offer.
    #[arg(long, value_enum, default_value = "default")]
    suites: Suites,
    /// Verify the server's handshake signature on one handshake in N (the first always).
    #[arg(long, default_value_t = 1)]
    verify_every: u64,
}

#[derive(Subcommand)]
enum Command {
    /// Full handshakes (no resumption) in a loop: connect, handshake, close_notify, close.
    Handshakes {
        #[command(flatten)]
        tls: TlsArgs,
        /// Length of the measured window.
        #[arg(long, default_value_t = 5.0)]
        seconds: f64,
        /// Unmeasured run-in before the window.
        #[arg(long, default_value_t = 1.0)]
        warmup: f64,
        /// Handshakes in flight.
        #[arg(long, default_value_t = 32)]
        concurrency: usize,
        /// Server process whose CPU time is read (repeatable).
        #[arg(long = "pid")]
        pids: Vec<i32>,
    },
    /// Accepts connections; each sends a header (two little-endian u64: UP, DOWN), then UP bytes,
    /// which are discarded; it gets DOWN bytes back, then UP as 8 bytes. Runs until killed.
    Sink {
        #[arg(long)]
        listen: SocketAddr,
    },
    /// Sends `bytes` through `addr` to a sink and waits for its acknowledgement.
    Bulk {
        #[arg(long)]
        addr: SocketAddr,
        #[arg(long)]
        bytes: u64,
        /// Gateway process whose CPU time is read (repeatable).
        #[arg(long = "pid")]
        pids: Vec<i32>,
        /// Our own helper process (the sink), not counted as a gateway nor as "other".
        #[arg(long = "aux-pid")]
        aux: Vec<i32>,
    },
    /// Opens `count` TLS connections, completes each handshake, holds them idle, and reports the
    /// growth of the server's RSS.
    Idle {
        #[command(flatten)]
        tls: TlsArgs,
        #[arg(long, default_value_t = 10_000)]
        count: usize,
        /// Handshakes in flight while opening.
        #[arg(long, default_value_t = 64)]
        concurrency: usize,
        /// Server process whose RSS is read.
        #[arg(long)]
        pid: i32,
        /// Seconds to wait after the last handshake before reading RSS.
        #[arg(long, default_value_t = 3.0)]
        settle: f64,
        /// Before going idle, move this many bytes each way through the connection (needs a
        /// listener whose backend is `loadgen sink`); 0: handshake only.
        #[arg(long, default_value_t = 0)]
        traffic: u64,
        /// Seconds to keep the connections open after measuring (for inspecting the server).
        #[arg(long, default_value_t = 0.0)]
        hold: f64,
        /// pqgate admin address: reads `pqgate_active_connections` while the connections are open.
        #[arg(long)]
        admin: Option<SocketAddr>,
    },
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        match cli.command {
            Command::Handshakes {
                tls,
                seconds,
                warmup,
                concurrency,
                pids,
            } => handshakes(&tls, seconds, warmup, concurrency, &pids).await,
            Command::Sink { listen } => sink(listen).await,
            Command::Bulk {
                addr,
                bytes,
                pids,
                aux,
            } => bulk(addr, bytes, &pids, &aux).await,
            Command::Idle {
                tls,
                count,
                concurrency,
                pid,
                settle,
                traffic,
                hold,
                admin,
            } => {
                let spec = IdleSpec {
                    count,
                    concurrency,
                    pid,
                    settle,
                    traffic,
                    hold,
                    admin,
                };
                idle(&tls, &spec).await
            }
        }
    })
}

/// Accepts exactly one certificate and verifies handshake signatures made with it (one in
/// `every`).
#[derive(Debug)]
struct PinnedCert {
    cert: CertificateDer<'static>,
    algs: WebPkiSupportedAlgorithms,
    every: u64,
    seen: AtomicU64,
}

impl ServerCertVerifier for PinnedCert {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if end_entity.as_ref() == self.cert.as_ref() {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(CertificateError::UnknownIssuer.into())
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algs)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        if !self
            .seen
            .fetch_add(1, Ordering::Relaxed)
            .is_multiple_of(self.every.max(1))
        {
            return Ok(HandshakeSignatureValid::assertion());
        }
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algs)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algs.supported_schemes()
    }
}

/// A client key share made once and offered on every handshake (see the module docs).
struct ReusedShare {
    name: NamedGroup,
    x25519: agreement::PrivateKey,
    mlkem: Option<kem::DecapsulationKey>,
    share: Vec<u8>,
}

impl fmt::Debug for ReusedShare {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ReusedShare({:?})", self.name)
    }
}

/// ML-KEM-768 ciphertext length in the server's X25519MLKEM768 share.
const MLKEM768_CIPHERTEXT: usize = 1088;

impl ReusedShare {
    /// X25519MLKEM768 (share: ML-KEM-768 encapsulation key, then X25519) or plain X25519.
    fn new(hybrid: bool) -> anyhow::Result<&'static Self> {
        let x25519 = agreement::PrivateKey::generate(&agreement::X25519)?;
        let x_pub = x25519.compute_public_key()?.as_ref().to_vec();
        let (name, mlkem, share) = if hybrid {
            let dk = kem::DecapsulationKey::generate(&kem::ML_KEM_768)?;
            let mut share = dk.encapsulation_key()?.key_bytes()?.as_ref().to_vec();
            share.extend_from_slice(&x_pub);
            (NamedGroup::X25519MLKEM768, Some(dk), share)
        } else {
            (NamedGroup::X25519, None, x_pub)
        };
        Ok(Box::leak(Box::new(Self {
            name,
            x25519,
            mlkem,
            share,
        })))
    }

    fn x25519_secret(&self, peer: &[u8]) -> Result<Vec<u8>, rustls::Error> {
        agreement::agree(
            &self.x25519,
            agreement::UnparsedPublicKey::new(&agreement::X25519, peer),
            rustls::Error::from(PeerMisbehaved::InvalidKeyShare),
            |ss| Ok(ss.to_vec()),
        )
    }
}

/// One handshake's use of the shared key share.
struct ReusedActive(&'static ReusedShare);

impl SupportedKxGroup for &'static ReusedShare {
    fn start(&self) -> Result<Box<dyn ActiveKeyExchange>, rustls::Error> {
        Ok(Box::new(ReusedActive(self)))
    }

    fn name(&self) -> NamedGroup {
        self.name
    }

    fn usable_for_version(&self, version: ProtocolVersion) -> bool {
        self.mlkem.is_none() || version == ProtocolVersion::TLSv1_3
    }
}

impl ActiveKeyExchange for ReusedActive {
    fn complete(self: Box<Self>, peer: &[u8]) -> Result<SharedSecret, rustls::Error> {
        let Some(dk) = &self.0.mlkem else {
            return self.0.x25519_secret(peer).map(SharedSecret::from);
        };
        if peer.len() != MLKEM768_CIPHERTEXT + 32 {
            return Err(PeerMisbehaved::InvalidKeyShare.into());
        }
        let (ct, x_peer) = peer.split_at(MLKEM768_CIPHERTEXT);
        let ss = dk
            .decapsulate(kem::Ciphertext::from(ct))
            .map_err(|_| rustls::Error::from(PeerMisbehaved::InvalidKeyShare))?;
        let mut secret = ss.as_ref().to_vec();
        secret.extend_from_slice(&self.0.x25519_secret(x_peer)?);
        Ok(SharedSecret::from(secret))
    }

    fn pub_key(&self) -> &[u8] {
        &self.0.share
    }

    fn group(&self) -> NamedGroup {
        self.0.name
    }
}

/// A TLS client for the chosen groups, plus the group it must negotiate.
struct Client {
    connector: TlsConnector,
    name: ServerName<'static>,
    want: NamedGroup,
    addr: SocketAddr,
}

impl Client {
    fn new(args: &TlsArgs) -> anyhow::Result<Self> {
        let mut provider = match args.groups {
            Groups::Hybrid => pqgate_agility::build_provider(pqgate_agility::ProviderSpec {
                policy: pqgate_agility::KxPolicy::HybridRequired,
                tls12: false,
            })?,
            Groups::Classical => Arc::new(CryptoProvider {
                kx_groups: vec![aws_lc_rs::kx_group::X25519],
                ..aws_lc_rs::default_provider()
            }),
        };
        // The first group carries the key share: replace it with the reused one.
        let want = provider.kx_groups[0].name();
        let reused: &'static dyn SupportedKxGroup =
            Box::leak(Box::new(ReusedShare::new(want != NamedGroup::X25519)?));
        Arc::make_mut(&mut provider).kx_groups[0] = reused;
        if let Suites::Aes128 = args.suites {
            Arc::make_mut(&mut provider).cipher_suites =
                vec![aws_lc_rs::cipher_suite::TLS13_AES_128_GCM_SHA256];
        }
        pqgate_agility::warm_up_rng(&provider)?;
        let cert = CertificateDer::from_pem_file(&args.cert)
            .with_context(|| format!("reading {}", args.cert.display()))?;
        let verifier = Arc::new(PinnedCert {
            cert,
            algs: provider.signature_verification_algorithms,
            every: args.verify_every,
            seen: AtomicU64::new(0),
        });
        let mut config = ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13])?
            .dangerous()
            .with_custom_certificate_verifier(verifier)
            .with_no_client_auth();
        config.resumption = Resumption::disabled();
        Ok(Self {
            connector: TlsConnector::from(Arc::new(config)),
            name: ServerName::try_from(args.server_name.clone())?,
            want,
            addr: args.addr,
        })
    }

    /// Connects and completes a handshake on the expected group.
    async fn open(&self) -> io::Result<TlsStream<TcpStream>> {
        let tcp = TcpStream::connect(self.addr).await?;
        tcp.set_nodelay(true)?;
        let tls = self.connector.connect(self.name.clone(), tcp).await?;
        let got = tls.get_ref().1.negotiated_key_exchange_group();
        if got.map(|g| g.name()) != Some(self.want) {
            return Err(io::Error::other(format!(
                "negotiated {:?}, wanted {:?}",
                got.map(|g| g.name()),
                self.want
            )));
        }
        Ok(tls)
    }

    /// One full handshake, then close_notify, then read until the server closes.
    async fn handshake_and_close(&self) -> io::Result<()> {
        let mut tls = self.open().await?;
        tls.shutdown().await?;
        let mut buf = [0u8; 2048];
        loop {
            match tls.read(&mut buf).await {
                Ok(0) | Err(_) => return Ok(()),
                Ok(_) => {}
            }
        }
    }
}

/// utime + stime of a process (all its threads), in seconds.
fn cpu_seconds(pid: &str) -> io::Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    let rest = stat
        .rsplit_once(") ")
        .ok_or_else(|| io::Error::other("malformed stat"))?
        .1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // Fields 14 and 15 of stat(5); `rest` starts at field 3.
    let ticks = |i: usize| -> io::Result<u64> {
        fields
            .get(i)
            .and_then(|f| f.parse().ok())
            .ok_or_else(|| io::Error::other("malformed stat"))
    };
    Ok((ticks(11)? + ticks(12)?) as f64 / clock_ticks())
}

/// (busy, steal) CPU seconds of the whole machine so far, from /proc/stat.
fn machine_seconds() -> io::Result<(f64, f64)> {
    let stat = std::fs::read_to_string("/proc/stat")?;
    let line = stat
        .lines()
        .find(|l| l.starts_with("cpu "))
        .ok_or_else(|| io::Error::other("no cpu line in /proc/stat"))?;
    // user nice system idle iowait irq softirq steal (guest time is already inside user).
    let v: Vec<f64> = line
        .split_whitespace()
        .skip(1)
        .take(8)
        .filter_map(|f| f.parse().ok())
        .collect();
    let at = |i: usize| v.get(i).copied().unwrap_or(0.0);
    let busy = at(0) + at(1) + at(2) + at(5) + at(6);
    Ok((busy / clock_ticks(), at(7) / clock_ticks()))
}

/// Clock ticks per second (the unit of /proc CPU times).
fn clock_ticks() -> f64 {
    // SAFETY: sysconf has no preconditions.
    unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64
}

/// CPU times read at one instant: the measured processes, helpers of ours that are not measured
/// (`aux`), this process, and the whole machine.
struct Snapshot {
    at: Instant,
    measured: f64,
    aux: f64,
    own: f64,
    busy: f64,
    steal: f64,
}

impl Snapshot {
    fn take(pids: &[i32], aux: &[i32]) -> io::Result<Self> {
        let (busy, steal) = machine_seconds()?;
        Ok(Self {
            at: Instant::now(),
            measured: cpu_of(pids)?,
            aux: cpu_of(aux)?,
            own: cpu_seconds("self")?,
            busy,
            steal,
        })
    }

    /// `key=value` fields for the window from `self` to `later`, CPU in cores (seconds per
    /// second): `server_util` (measured), `client_util` (this process), `other_util` (everything
    /// else that ran on the machine: other people's processes), `steal_util`.
    fn window(&self, later: &Snapshot) -> (f64, f64, String) {
        let wall = later.at.duration_since(self.at).as_secs_f64().max(1e-9);
        let measured = later.measured - self.measured;
        let own = later.own - self.own;
        let other = (later.busy - self.busy) - measured - own - (later.aux - self.aux);
        let fields = format!(
            "server_util={:.2} client_util={:.2} other_util={:.2} steal_util={:.2}",
            measured / wall,
            own / wall,
            (other / wall).max(0.0),
            (later.steal - self.steal) / wall
        );
        (wall, measured, fields)
    }
}

fn cpu_of(pids: &[i32]) -> io::Result<f64> {
    pids.iter().map(|p| cpu_seconds(&p.to_string())).sum()
}

/// VmRSS of a process in KiB.
fn rss_kib(pid: i32) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(Path::new("/proc").join(pid.to_string()).join("status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .context("no VmRSS")
}

async fn handshakes(
    args: &TlsArgs,
    seconds: f64,
    warmup: f64,
    concurrency: usize,
    pids: &[i32],
) -> anyhow::Result<()> {
    let client = Arc::new(Client::new(args)?);
    client
        .handshake_and_close()
        .await
        .context("first handshake")?;
    let done = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = JoinSet::new();
    for _ in 0..concurrency.max(1) {
        let (client, done, errors, stop) =
            (client.clone(), done.clone(), errors.clone(), stop.clone());
        tasks.spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                match timeout(CONN_TIMEOUT, client.handshake_and_close()).await {
                    Ok(Ok(())) => done.fetch_add(1, Ordering::Relaxed),
                    _ => errors.fetch_add(1, Ordering::Relaxed),
                };
            }
        });
    }
    tokio::time::sleep(Duration::from_secs_f64(warmup)).await;
    let (n0, e0) = (done.load(Ordering::Relaxed), errors.load(Ordering::Relaxed));
    let start = Snapshot::take(pids, &[])?;
    tokio::time::sleep(Duration::from_secs_f64(seconds)).await;
    let (n1, e1) = (done.load(Ordering::Relaxed), errors.load(Ordering::Relaxed));
    let (wall, server_cpu, utils) = start.window(&Snapshot::take(pids, &[])?);
    stop.store(true, Ordering::Relaxed);
    let _ = timeout(CONN_TIMEOUT + Duration::from_secs(1), async {
        while tasks.join_next().await.is_some() {}
    })
    .await;
    let count = n1 - n0;
    println!(
        "RESULT kind=handshakes group={:?} count={count} secs={wall:.3} rate={:.1} \
         server_cpu_s={server_cpu:.2} cpu_ms_per_hs={:.4} {utils} errors={}",
        client.want,
        count as f64 / wall,
        1000.0 * server_cpu / count.max(1) as f64,
        e1 - e0
    );
    if count == 0 {
        bail!("no handshake completed in the window");
    }
    Ok(())
}

async fn sink(listen: SocketAddr) -> anyhow::Result<()> {
    let listener = TcpListener::bind(listen).await?;
    loop {
        let (mut s, _) = listener.accept().await?;
        tokio::spawn(async move {
            let _ = s.set_nodelay(true);
            let mut header = [0u8; 16];
            if s.read_exact(&mut header).await.is_err() {
                return;
            }
            let (up, down) = split_header(&header);
            let mut buf = vec![0u8; BULK_CHUNK];
            let mut got = 0u64;
            while got < up {
                match s.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => got += n as u64,
                }
            }
            buf.fill(0);
            let mut left = down;
            while left > 0 {
                let n = left.min(BULK_CHUNK as u64) as usize;
                if s.write_all(&buf[..n]).await.is_err() {
                    return;
                }
                left -= n as u64;
            }
            if s.write_all(&got.to_le_bytes()).await.is_err() {
                return;
            }
            while let Ok(n) = s.read(&mut buf).await {
                if n == 0 {
                    break;
                }
            }
        });
    }
}

fn split_header(h: &[u8; 16]) -> (u64, u64) {
    let (a, b) = h.split_at(8);
    (
        u64::from_le_bytes(a.try_into().unwrap_or_default()),
        u64::from_le_bytes(b.try_into().unwrap_or_default()),
    )
}

/// The client side of the sink protocol: sends `up` bytes of `data` (repeated), reads `down`
/// bytes and the sink's count of what it received.
async fn exchange<S>(s: &mut S, data: &[u8], up: u64, down: u64) -> anyhow::Result<()>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut header = [0u8; 16];
    header[..8].copy_from_slice(&up.to_le_bytes());
    header[8..].copy_from_slice(&down.to_le_bytes());
    s.write_all(&header).await?;
    let mut left = up;
    while left > 0 {
        let n = left.min(data.len() as u64) as usize;
        s.write_all(&data[..n]).await?;
        left -= n as u64;
    }
    s.flush().await?;
    let mut buf = vec![0u8; (down.min(BULK_CHUNK as u64) as usize).max(8)];
    let mut left = down;
    while left > 0 {
        let want = left.min(buf.len() as u64) as usize;
        let n = s.read(&mut buf[..want]).await?;
        if n == 0 {
            bail!("sink closed early");
        }
        left -= n as u64;
    }
    let mut ack = [0u8; 8];
    s.read_exact(&mut ack).await?;
    let got = u64::from_le_bytes(ack);
    if got != up {
        bail!("sink received {got} bytes, sent {up}");
    }
    Ok(())
}

async fn bulk(addr: SocketAddr, bytes: u64, pids: &[i32], aux: &[i32]) -> anyhow::Result<()> {
    // Incompressible-looking bytes (xorshift), generated once.
    let mut buf = vec![0u8; BULK_CHUNK];
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    for chunk in buf.chunks_mut(8) {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        chunk.copy_from_slice(&state.to_le_bytes()[..chunk.len()]);
    }
    let start = Snapshot::take(pids, aux)?;
    let mut s = TcpStream::connect(addr).await?;
    s.set_nodelay(true)?;
    timeout(Duration::from_secs(600), exchange(&mut s, &buf, bytes, 0))
        .await
        .context("transfer timed out")??;
    let (wall, cpu, utils) = start.window(&Snapshot::take(pids, aux)?);
    println!(
        "RESULT kind=bulk bytes={bytes} secs={wall:.3} mb_per_s={:.1} gw_cpu_s={cpu:.2} \
         cpu_s_per_gb={:.3} {utils}",
        bytes as f64 / 1e6 / wall,
        cpu / (bytes as f64 / 1e9)
    );
    Ok(())
}

/// What `idle` opens and measures.
struct IdleSpec {
    count: usize,
    concurrency: usize,
    pid: i32,
    settle: f64,
    traffic: u64,
    hold: f64,
    admin: Option<SocketAddr>,
}

async fn idle(args: &TlsArgs, spec: &IdleSpec) -> anyhow::Result<()> {
    let &IdleSpec {
        count,
        concurrency,
        pid,
        settle,
        traffic,
        hold,
        admin,
    } = spec;
    let client = Arc::new(Client::new(args)?);
    let data: Arc<[u8]> = vec![0x5a; BULK_CHUNK].into();
    // Run-in: the server's allocator, lazy statics and per-listener metrics exist afterwards.
    for _ in 0..100 {
        timeout(CONN_TIMEOUT, client.handshake_and_close())
            .await
            .context("run-in handshake timed out")??;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let before = rss_kib(pid)?;
    let started = Instant::now();
    let mut open = Vec::with_capacity(count);
    let mut tasks = JoinSet::new();
    let (mut launched, mut errors) = (0usize, 0usize);
    while open.len() + errors < count {
        while launched < count && tasks.len() < concurrency.max(1) {
            let (client, data) = (client.clone(), data.clone());
            tasks.spawn(async move {
                timeout(CONN_TIMEOUT * 3, async move {
                    let mut tls = client.open().await?;
                    if traffic > 0 {
                        exchange(&mut tls, &data, traffic, traffic).await?;
                    }
                    anyhow::Ok(tls)
                })
                .await
            });
            launched += 1;
        }
        match tasks.join_next().await {
            Some(Ok(Ok(Ok(tls)))) => open.push(tls),
            Some(_) => errors += 1,
            None => break,
        }
    }
    let opening = started.elapsed().as_secs_f64();
    tokio::time::sleep(Duration::from_secs_f64(settle)).await;
    let after = rss_kib(pid)?;
    let active = match admin {
        Some(a) => active_connections(a).await.unwrap_or(-1.0),
        None => -1.0,
    };
    let held = open.len();
    println!(
        "RESULT kind=idle group={:?} open={held} errors={errors} open_secs={opening:.1} \
         traffic={traffic} server_active={active} rss_before_kib={before} rss_after_kib={after} \
         kib_per_conn={:.2}",
        client.want,
        after.saturating_sub(before) as f64 / held.max(1) as f64
    );
    tokio::time::sleep(Duration::from_secs_f64(hold)).await;
    drop(open);
    if errors > 0 {
        bail!("{errors} of {count} connections failed");
    }
    Ok(())
}

/// Sums `pqgate_active_connections` over every listener from the admin endpoint.
async fn active_connections(admin: SocketAddr) -> anyhow::Result<f64> {
    let mut s = timeout(Duration::from_secs(5), TcpStream::connect(admin)).await??;
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await?;
    let mut text = String::new();
    timeout(Duration::from_secs(5), s.read_to_string(&mut text)).await??;
    Ok(text
        .lines()
        .filter(|l| l.starts_with("pqgate_active_connections"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum())
}
