//! PQ PSK rotation CPU benchmark (issue #5): node A (one process) keeps N peers, each a separate
//! responder node in a second process (one QUIC connection per pair, as in production), on
//! loopback; prints, as Markdown, the CPU time of each process for the set-up (N handshakes plus
//! the first rotation) and for each epoch's rotation round, with the channels' idle (keep-alive)
//! CPU subtracted, and checks that both sides installed identical PSKs for every measured epoch.
//!
//! `pqpsk_rotation run --peers N --interval S --epochs K --kem none|hqc-128|classic-mceliece-460896`
//! (the `responders` subcommand is the child process it starts itself).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use pqgate::pqpsk::{Node, Psk, PskSink, WgKey};
use pqgate_agility::Registry;
use pqgate_core::pqpsk::config::{PqMode, PqPskConfig, PqPskPeer, SecondKem};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};
use support::pqpsk_peer;

/// Node A's WireGuard key: the lowest, so A initiates every channel (connects, proposes epochs).
const KEY_A: WgKey = [0x01; 32];
const NAME_A: &str = "a.pqbench.test";
/// All responders present one certificate for this name (each still verifies per connection).
const NAME_B: &str = "b.pqbench.test";
/// Sampled this long before each epoch boundary, so the window holds the whole round.
const GUARD: Duration = Duration::from_millis(300);
/// Added after the last install of a round (trailing ACKs and stream frames).
const TAIL: Duration = Duration::from_millis(200);

fn registry() -> &'static Registry {
    static R: OnceLock<Registry> = OnceLock::new();
    R.get_or_init(Registry::power_on)
}

/// Responder `i`'s WireGuard key (above `KEY_A`, distinct for i < 65,536).
fn key_b(i: usize) -> WgKey {
    let mut k = [0x80; 32];
    k[1..3].copy_from_slice(&(i as u16).to_be_bytes());
    k
}

/// Process CPU time (user + system) so far, in microseconds.
fn cpu_us() -> u64 {
    // SAFETY: getrusage only writes the struct we pass, which is zero-initialised and ours.
    let ru = unsafe {
        let mut ru: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut ru);
        ru
    };
    let us = |t: libc::timeval| t.tv_sec as u64 * 1_000_000 + t.tv_usec as u64;
    us(ru.ru_utime) + us(ru.ru_stime)
}

/// Busy CPU time of the whole machine (all but idle and iowait), in microseconds.
fn machine_busy_us() -> u64 {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let Some(line) = stat.lines().next() else {
        return 0;
    };
    // SAFETY: sysconf has no memory effects.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    let v: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|f| f.parse().ok())
        .collect();
    let busy: u64 = v
        .iter()
        .take(8)
        .enumerate()
        .filter(|(i, _)| *i != 3 && *i != 4)
        .map(|(_, t)| t)
        .sum();
    busy * 1_000_000 / hz
}

fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Per epoch: installs, and the last PSK installed for each peer; and the peers seen at least once.
#[derive(Default)]
struct Tally {
    epochs: BTreeMap<u64, (usize, HashMap<WgKey, [u8; 32]>)>,
    seen: HashSet<WgKey>,
}

/// The tally of one process's installs.
#[derive(Default)]
struct CountSink(Mutex<Tally>);

/// A sink that only tallies (what the WireGuard engine would be told, at near-zero cost), under
/// the pair's responder key: the peer's key on node A, the node's own key on a responder.
struct Tagged(Arc<CountSink>, Option<WgKey>);

impl PskSink for Tagged {
    fn install(&self, peer: WgKey, psk: Psk, epoch: u64) {
        let mut t = self.0.0.lock().unwrap_or_else(|e| e.into_inner());
        let pair = self.1.unwrap_or(peer);
        let e = t.epochs.entry(epoch).or_default();
        e.0 += 1;
        e.1.insert(pair, *psk.expose());
        t.seen.insert(pair);
    }
    fn force_handshake(&self, _peer: WgKey) {}
    fn expire(&self, _peer: WgKey) {}
}

impl CountSink {
    fn seen(&self) -> usize {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).seen.len()
    }
    /// Pairs that installed a PSK for epoch `e`.
    fn pairs_in(&self, e: u64) -> usize {
        let t = self.0.lock().unwrap_or_else(|e| e.into_inner());
        t.epochs.get(&e).map_or(0, |x| x.1.len())
    }
    /// Epoch `e` as `pairs installs digest`: the digest XORs each pair's last PSK with its
    /// responder key's bytes rotated in, so a PSK under the wrong pair shows too.
    fn summary(&self, e: u64) -> String {
        let t = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let Some((installs, last)) = t.epochs.get(&e) else {
            return "0 0 -".into();
        };
        let mut x = [0u8; 32];
        for (pair, psk) in last {
            let shift = usize::from(pair[1]) ^ usize::from(pair[2]);
            for (i, b) in psk.iter().enumerate() {
                x[(i + shift) % 32] ^= b;
            }
        }
        format!("{} {installs} {}", last.len(), hex(&x))
    }
}

struct Args {
    peers: usize,
    interval: u64,
    epochs: usize,
    kem: SecondKem,
    kem_name: String,
    dir: Option<PathBuf>,
}

fn parse_args(mut it: impl Iterator<Item = String>) -> anyhow::Result<Args> {
    let mut a = Args {
        peers: 100,
        interval: 5,
        epochs: 3,
        kem: SecondKem::None,
        kem_name: "none".into(),
        dir: None,
    };
    while let Some(flag) = it.next() {
        let v = it.next().with_context(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--peers" => a.peers = v.parse()?,
            "--interval" => a.interval = v.parse()?,
            "--epochs" => a.epochs = v.parse()?,
            "--dir" => a.dir = Some(v.into()),
            "--kem" => {
                a.kem = match v.as_str() {
                    "none" => SecondKem::None,
                    "hqc-128" => SecondKem::Hqc128,
                    "classic-mceliece-460896" => SecondKem::ClassicMceliece460896,
                    _ => bail!("unknown --kem {v}"),
                };
                a.kem_name = v;
            }
            _ => bail!("unknown flag {flag}"),
        }
    }
    if a.peers == 0 || a.peers > 65_535 || a.epochs == 0 {
        bail!("--peers must be 1..=65535 and --epochs >= 1");
    }
    Ok(a)
}

/// Writes a CA (ECDSA P-256) and one leaf each for A and the responders into `dir`.
fn make_certs(dir: &Path) -> anyhow::Result<()> {
    let ca_key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    params
        .distinguished_name
        .push(DnType::CommonName, "pqbench CA");
    std::fs::write(dir.join("ca.pem"), params.self_signed(&ca_key)?.pem())?;
    let issuer = Issuer::new(params, ca_key);
    for (file, name) in [("a", NAME_A), ("b", NAME_B)] {
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
        let cert = CertificateParams::new(vec![name.to_owned()])?.signed_by(&key, &issuer)?;
        std::fs::write(dir.join(format!("{file}-cert.pem")), cert.pem())?;
        std::fs::write(dir.join(format!("{file}-key.pem")), key.serialize_pem())?;
    }
    Ok(())
}

fn config(dir: &Path, side: &str, a: &Args, peers: Vec<PqPskPeer>) -> PqPskConfig {
    PqPskConfig {
        ca: dir.join("ca.pem"),
        crl: Vec::new(),
        cert: dir.join(format!("{side}-cert.pem")),
        key: dir.join(format!("{side}-key.pem")),
        listen: SocketAddr::from(([127, 0, 0, 1], 0)),
        rotation_interval_secs: a.interval,
        mode: PqMode::Preferred,
        second_kem: a.kem,
        profile: "pq-hybrid".into(),
        peer: peers,
    }
}

/// Child: starts the N responder nodes, prints their addresses, then answers `cpu` and
/// `epoch E` requests on stdin until it closes.
async fn responders(a: Args) -> anyhow::Result<()> {
    let dir = a.dir.clone().context("--dir is required")?;
    let sink = Arc::new(CountSink::default());
    let mut nodes = Vec::with_capacity(a.peers);
    let mut out = std::io::stdout().lock();
    for i in 0..a.peers {
        let c = config(&dir, "b", &a, vec![pqpsk_peer(KEY_A, None, NAME_A)]);
        let s: Arc<dyn PskSink> = Arc::new(Tagged(sink.clone(), Some(key_b(i))));
        let node = Node::start(&c, key_b(i), registry(), s).await?;
        writeln!(out, "addr {}", node.local_addr()?)?;
        nodes.push(node);
    }
    writeln!(out, "ready")?;
    out.flush()?;
    drop(out);
    let (tx, mut rx) = tokio::sync::mpsc::channel::<String>(4);
    std::thread::spawn(move || {
        for line in std::io::stdin().lock().lines().map_while(Result::ok) {
            if tx.blocking_send(line).is_err() {
                return;
            }
        }
    });
    while let Some(line) = rx.recv().await {
        let reply = match line.split_once(' ') {
            Some(("epoch", e)) => sink.summary(e.parse()?),
            _ => cpu_us().to_string(),
        };
        println!("{reply}");
    }
    for n in nodes {
        n.shutdown().await;
    }
    Ok(())
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// The responder process, spoken to by request/response lines.
struct Remote {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

impl Remote {
    fn ask(&mut self, q: &str) -> anyhow::Result<String> {
        writeln!(self.stdin, "{q}")?;
        self.stdin.flush()?;
        let mut line = String::new();
        if self.stdout.read_line(&mut line)? == 0 {
            bail!("responder process ended");
        }
        Ok(line.trim().to_owned())
    }
    fn cpu(&mut self) -> anyhow::Result<u64> {
        Ok(self.ask("cpu")?.parse()?)
    }
}

impl Drop for Remote {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts the child; returns it (once its nodes are up) and its nodes' addresses.
fn spawn_responders(a: &Args, dir: &Path) -> anyhow::Result<(Remote, Vec<SocketAddr>)> {
    let mut child = Command::new(std::env::current_exe()?)
        .args(["responders", "--peers", &a.peers.to_string(), "--interval"])
        .args([
            a.interval.to_string(),
            "--kem".into(),
            a.kem_name.clone(),
            "--dir".into(),
        ])
        .arg(dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()?;
    let stdin = child.stdin.take().context("no stdin")?;
    let stdout = BufReader::new(child.stdout.take().context("no stdout")?);
    let mut r = Remote {
        child,
        stdin,
        stdout,
    };
    let mut addrs = Vec::with_capacity(a.peers);
    loop {
        let mut line = String::new();
        if r.stdout.read_line(&mut line)? == 0 {
            bail!("responder process ended during start-up");
        }
        match line.trim().split_once(' ') {
            Some(("addr", s)) => addrs.push(s.parse()?),
            _ if line.trim() == "ready" => return Ok((r, addrs)),
            _ => bail!("unexpected line from responders: {line}"),
        }
    }
}

/// CPU of both processes and the machine at one instant.
#[derive(Clone, Copy)]
struct Sample {
    at: Instant,
    a: u64,
    b: u64,
    machine: u64,
}

fn sample(r: &mut Remote) -> anyhow::Result<Sample> {
    Ok(Sample {
        at: Instant::now(),
        a: cpu_us(),
        b: r.cpu()?,
        machine: machine_busy_us(),
    })
}

/// CPU between two samples: (A us, B us, other processes us, seconds).
fn delta(s: &Sample, e: &Sample) -> (f64, f64, f64, f64) {
    let (a, b) = ((e.a - s.a) as f64, (e.b - s.b) as f64);
    let other = (e.machine.saturating_sub(s.machine) as f64 - a - b).max(0.0);
    (a, b, other, (e.at - s.at).as_secs_f64())
}

/// Waits (bounded) until `done` holds, polling every 10 ms.
async fn wait_until(limit: Duration, mut done: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + limit;
    while !done() {
        if Instant::now() >= end {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    true
}

async fn sleep_until_ms(t: u64) {
    tokio::time::sleep(Duration::from_millis(t.saturating_sub(unix_ms()))).await;
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

/// One measured epoch: rotation window and the idle window after it.
struct Round {
    epoch: u64,
    rot: (f64, f64, f64, f64),
    idle: (f64, f64, f64, f64),
}

async fn run(a: Args) -> anyhow::Result<()> {
    let tmp = tempfile::tempdir()?;
    make_certs(tmp.path())?;
    let _ = registry();
    let t0 = Instant::now();
    let (mut remote, addrs) = spawn_responders(&a, tmp.path())?;
    let b_start = (remote.cpu()?, t0.elapsed().as_secs_f64());
    let peers = addrs
        .iter()
        .enumerate()
        .map(|(i, ad)| pqpsk_peer(key_b(i), Some(*ad), NAME_B))
        .collect();
    let sink = Arc::new(CountSink::default());
    let s0 = sample(&mut remote)?;
    let s: Arc<dyn PskSink> = Arc::new(Tagged(sink.clone(), None));
    let node = Node::start(&config(tmp.path(), "a", &a, peers), KEY_A, registry(), s).await?;
    let limit = Duration::from_secs(120);
    if !wait_until(limit, || sink.seen() == a.peers).await {
        bail!(
            "only {} of {} peers rotated within {limit:?}",
            sink.seen(),
            a.peers
        );
    }
    let s1 = sample(&mut remote)?;
    let setup = delta(&s0, &s1);
    let iv = a.interval * 1000;
    let mut rounds = Vec::new();
    let mut next = unix_ms() / iv + 1;
    if (next * iv).saturating_sub(unix_ms()) < GUARD.as_millis() as u64 + 100 {
        next += 1;
    }
    sleep_until_ms(next * iv - GUARD.as_millis() as u64).await;
    let mut start = sample(&mut remote)?;
    for k in 0..a.epochs {
        let e = next + k as u64;
        let all = wait_until(Duration::from_millis(iv * 9 / 10), || {
            sink.pairs_in(e) >= a.peers
        })
        .await;
        if !all {
            bail!(
                "epoch {e}: only {} of {} peers rotated",
                sink.pairs_in(e),
                a.peers
            );
        }
        tokio::time::sleep(TAIL).await;
        let done = sample(&mut remote)?;
        sleep_until_ms((e + 1) * iv - GUARD.as_millis() as u64).await;
        let after = sample(&mut remote)?;
        rounds.push(Round {
            epoch: e,
            rot: delta(&start, &done),
            idle: delta(&done, &after),
        });
        start = after;
    }
    let installs = check_psks(&sink, &mut remote, &rounds, a.peers)?;
    let mut fails = BTreeMap::new();
    for (_, st) in node.status() {
        for (f, c) in st.failures.nonzero() {
            *fails.entry(f.label()).or_insert(0u64) += c;
        }
    }
    report(&a, b_start, setup, &rounds, &installs, &fails);
    drop(node);
    Ok(())
}

/// Both sides must hold, for every measured epoch, one PSK per pair and the same PSKs (the
/// digests of each pair's last install); returns the installs per epoch (A, responders), more
/// than N when a channel was re-made and its epoch re-keyed.
fn check_psks(
    sink: &CountSink,
    r: &mut Remote,
    rounds: &[Round],
    n: usize,
) -> anyhow::Result<Vec<(String, String)>> {
    let mut installs = Vec::new();
    for round in rounds {
        let mine = sink.summary(round.epoch);
        let theirs = r.ask(&format!("epoch {}", round.epoch))?;
        let (ma, ta) = (
            mine.split(' ').collect::<Vec<_>>(),
            theirs.split(' ').collect::<Vec<_>>(),
        );
        let same = ma.len() == 3 && ta.len() == 3 && ma[0] == ta[0] && ma[2] == ta[2];
        if !same || ma[0] != n.to_string() {
            bail!(
                "epoch {}: A has (pairs installs digest) {mine}, responders {theirs}",
                round.epoch
            );
        }
        installs.push((ma[1].to_owned(), ta[1].to_owned()));
    }
    Ok(installs)
}

fn report(
    a: &Args,
    b_start: (u64, f64),
    setup: (f64, f64, f64, f64),
    rounds: &[Round],
    installs: &[(String, String)],
    fails: &BTreeMap<&str, u64>,
) {
    let n = a.peers as f64;
    println!(
        "### N = {}, second_kem = {}, interval {} s\n",
        a.peers, a.kem_name, a.interval
    );
    println!(
        "- responder process start-up ({} nodes: TLS configs, sockets, KEM self-tests): {:.2} s CPU in {:.2} s wall",
        a.peers,
        b_start.0 as f64 / 1e6,
        b_start.1
    );
    println!(
        "- set-up (N QUIC handshakes + first rotation): A {:.2} s, B {:.2} s CPU in {:.2} s wall; per peer A {:.0} us, B {:.0} us; other processes {:.2} s",
        setup.0 / 1e6,
        setup.1 / 1e6,
        setup.3,
        setup.0 / n,
        setup.1 / n,
        setup.2 / 1e6
    );
    let fails: Vec<String> = fails.iter().map(|(k, v)| format!("{k} {v}")).collect();
    println!(
        "- failures counted by node A's peers (whole run): {}; every measured epoch: one PSK per pair on both sides, equal on both sides\n",
        if fails.is_empty() {
            "none".into()
        } else {
            fails.join(", ")
        }
    );
    println!(
        "| epoch | installs A/B | round wall s | A us | B us | idle A us/s | idle B us/s | net A us/peer | net B us/peer | other procs cores |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|");
    let (mut na, mut nb, mut ia, mut ib) = (vec![], vec![], vec![], vec![]);
    for (r, (ins_a, ins_b)) in rounds.iter().zip(installs) {
        let (ra, rb) = (r.idle.0 / r.idle.3, r.idle.1 / r.idle.3);
        let (pa, pb) = ((r.rot.0 - ra * r.rot.3) / n, (r.rot.1 - rb * r.rot.3) / n);
        let other = (r.rot.2 + r.idle.2) / 1e6 / (r.rot.3 + r.idle.3);
        println!(
            "| {} | {ins_a}/{ins_b} | {:.2} | {:.0} | {:.0} | {:.0} | {:.0} | {:.1} | {:.1} | {:.2} |",
            r.epoch, r.rot.3, r.rot.0, r.rot.1, ra, rb, pa, pb, other
        );
        na.push(pa);
        nb.push(pb);
        ia.push(ra / n);
        ib.push(rb / n);
    }
    let (ma, mb, ka, kb) = (median(na), median(nb), median(ia), median(ib));
    // Share of one core for 1,000 peers: rotations once per 120 s, idle channels all the time.
    let rot = |us: f64| us * 1000.0 / 120.0 / 1e6 * 100.0;
    let idle = |us_s: f64| us_s * 1000.0 / 1e6 * 100.0;
    println!(
        "\nMedians: rotation CPU per peer per epoch A (initiator) {ma:.1} us, B (responder) {mb:.1} us (both {:.1} us); idle channel CPU per peer A {ka:.2} us/s, B {kb:.2} us/s.\n",
        ma + mb
    );
    println!("| extrapolated to 1,000 peers, 120 s interval | rotations | idle channels | total |");
    println!("|---|---|---|---|");
    for (who, r, i) in [
        ("initiator side (A)", rot(ma), idle(ka)),
        ("responder side (B)", rot(mb), idle(kb)),
        ("both sides together", rot(ma + mb), idle(ka + kb)),
    ] {
        println!("| {who} | {r:.3}% | {i:.2}% | {:.2}% |", r + i);
    }
    println!();
}

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let cmd = args.next().unwrap_or_default();
    let a = parse_args(args)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    match cmd.as_str() {
        "run" => rt.block_on(run(a)),
        "responders" => rt.block_on(responders(a)),
        _ => bail!(
            "usage: pqpsk_rotation run|responders [--peers N] [--interval S] [--epochs K] [--kem K]"
        ),
    }
}
