//! `pqgate wg up` against another `pqgate wg up`, in two network namespaces joined by a veth,
//! with a pre-shared key:
//!
//! * an impaired link (tc netem: loss, reordering, delay on both veth ends) still carries a TCP
//!   transfer byte for byte (when the kernel has no netem the transfer runs unimpaired and the
//!   test says so);
//! * hostile input at pqgate A's UDP port from a socket outside the tunnel (random garbage,
//!   truncated handshake initiations, data messages with unknown receiver indices, a forged data
//!   message sent twice, a real data message sniffed off the veth and replayed, and a flood of
//!   148-byte "initiations" from many source ports): the tunnel keeps passing traffic during and
//!   after, and the exit summary counts the drops by reason;
//! * a flood of handshake initiations with valid mac1 (made with gotatun for a random static key
//!   each) from 200 source addresses, each below the per-source rate limit: the interface goes
//!   under load, answers with cookies instead of Diffie-Hellman work, and the established tunnel
//!   keeps carrying pings and a TCP transfer.
//!
//! Runs as root; skips (or fails under REQUIRE_INTEROP_TOOLS) when the tools are missing. Every
//! wait and loop is bounded and Drop tears everything down, even on panic.

use std::net::{SocketAddr, UdpSocket};
use std::ops::{Deref, DerefMut};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};
use support::lab::Lab;
use support::netns::*;
use support::require_root;
use support::sys::*;

const PORT_A: u16 = 51830;
const PORT_B: u16 = 51831;
const TRANSFER: usize = 8 << 20;
/// The transfers beside a flood, and their bound.
const FLOOD_TRANSFER: usize = 256 << 10;
const FLOOD_LIMIT: Duration = Duration::from_secs(30);

/// Root and every tool present; prints why not otherwise (fails under REQUIRE_INTEROP_TOOLS).
fn tools_ready(test: &str) -> bool {
    require_root(test, &["wg", "ping", "ip", "tc", "timeout"])
}

/// The lab's two namespaces, each running pqgate, and the relay between them when there is
/// one; all removed on drop.
struct Pair {
    lab: Lab,
    relay: Option<Relay>,
    /// pqgate A's public key (base64), once started.
    pub_a: String,
}

impl Deref for Pair {
    type Target = Lab;
    fn deref(&self) -> &Lab {
        &self.lab
    }
}

impl DerefMut for Pair {
    fn deref_mut(&mut self) -> &mut Lab {
        &mut self.lab
    }
}

impl Pair {
    fn new(tag: char) -> Self {
        Pair {
            lab: Lab::new("pqgp", &tag.to_string(), "10.98.0"),
            relay: None,
            pub_a: String::new(),
        }
    }

    /// Adds netem loss/reorder/delay on both veth ends; false when the kernel lacks netem.
    fn impair(&self) -> bool {
        for (ns, dev) in [(&self.a, &self.veth_a), (&self.b, &self.veth_b)] {
            let out = run(
                10,
                &[
                    "tc", "-n", ns, "qdisc", "add", "dev", dev, "root", "netem", "loss", "2%",
                    "reorder", "25%", "50%", "delay", "5ms",
                ],
            );
            if !out.status.success() {
                eprintln!(
                    "NOTE: tc netem unavailable ({})",
                    String::from_utf8_lossy(&out.stderr).trim()
                );
                return false;
            }
        }
        true
    }

    /// Starts `pqgate wg up` in both namespaces (A initiates, with a keepalive), each pointed at
    /// the other directly, or at the relay when there is one.
    fn start(&mut self) {
        let (to_b, to_a) = match &self.relay {
            Some(_) => (
                format!("10.98.0.2:{RELAY_A}"),
                format!("10.98.0.2:{RELAY_B}"),
            ),
            None => (format!("10.98.0.2:{PORT_B}"), format!("10.98.0.1:{PORT_A}")),
        };
        let (priv_a, pub_a) = wg_key_pair();
        let (priv_b, pub_b) = wg_key_pair();
        let psk = ok(&["wg", "genpsk"]).trim().to_owned();
        let conf_a = format!(
            "[Interface]\nPrivateKey = {priv_a}\nListenPort = {PORT_A}\n\
             Address = 10.101.0.1/24\n\n[Peer]\nPublicKey = {pub_b}\nPresharedKey = {psk}\n\
             AllowedIPs = 10.101.0.2/32\nEndpoint = {to_b}\nPersistentKeepalive = 25\n"
        );
        let conf_b = format!(
            "[Interface]\nPrivateKey = {priv_b}\nListenPort = {PORT_B}\n\
             Address = 10.101.0.2/24\n\n[Peer]\nPublicKey = {pub_a}\nPresharedKey = {psk}\n\
             AllowedIPs = 10.101.0.1/32\nEndpoint = {to_a}\n"
        );
        self.pub_a = pub_a;
        let spawn = |ns: &str, ifname: &str, conf: &str| {
            self.lab
                .wg_up(ns, ifname, conf, &[])
                .spawn()
                .expect("spawning pqgate")
        };
        let pq_b = spawn(&self.b, &self.if_b, &conf_b);
        let pq_a = spawn(&self.a, &self.if_a, &conf_a);
        (self.lab.pq_a, self.lab.pq_b) = (Some(pq_a), Some(pq_b));
    }
}

impl Drop for Pair {
    fn drop(&mut self) {
        // Before the lab (a field) stops the pqgates and deletes the namespaces.
        if let Some(relay) = self.relay.take() {
            relay.stop();
        }
    }
}

/// Relay ports, in namespace B: pqgate A sends to `RELAY_A`, pqgate B to `RELAY_B`.
const RELAY_A: u16 = 51840;
const RELAY_B: u16 = 51841;

/// A userspace impairment relay between the two pqgates, for kernels without netem: each
/// direction drops 2% of datagrams, sends 25% at once and delays the rest by 5 ms, so the
/// immediate ones overtake (as `netem loss 2% reorder 25% delay 5ms` does).
struct Relay {
    stop: Arc<AtomicBool>,
    threads: Vec<thread::JoinHandle<(u64, u64, u64)>>,
}

impl Relay {
    fn start(ns: &str) -> Relay {
        let stop = Arc::new(AtomicBool::new(false));
        // Sockets are made in a thread inside the namespace; the fds work from any thread.
        let (ra, rb) = spawn_in(ns, || {
            let ra = UdpSocket::bind(("10.98.0.2", RELAY_A)).expect("binding relay A");
            let rb = UdpSocket::bind(("10.98.0.2", RELAY_B)).expect("binding relay B");
            (ra, rb)
        })
        .join()
        .expect("relay socket thread");
        let a: SocketAddr = format!("10.98.0.1:{PORT_A}").parse().expect("addr");
        let b: SocketAddr = format!("10.98.0.2:{PORT_B}").parse().expect("addr");
        let threads = [
            (
                ra.try_clone().expect("clone"),
                rb.try_clone().expect("clone"),
                b,
                1u32,
            ),
            (rb, ra, a, 2u32),
        ]
        .into_iter()
        .map(|(from, via, to, seed)| {
            let stop = stop.clone();
            thread::spawn(move || impair_one_way(&from, &via, to, seed, &stop))
        })
        .collect();
        Relay { stop, threads }
    }

    /// Stops the relay; returns (forwarded, dropped, sent early) over both directions.
    fn stop(self) -> (u64, u64, u64) {
        self.stop.store(true, Ordering::Relaxed);
        let mut total = (0, 0, 0);
        for t in self.threads {
            if let Ok((f, d, e)) = t.join() {
                total = (total.0 + f, total.1 + d, total.2 + e);
            }
        }
        total
    }
}

/// Forwards datagrams arriving on `from` to `to` through `via`, impaired, until `stop`.
fn impair_one_way(
    from: &UdpSocket,
    via: &UdpSocket,
    to: SocketAddr,
    seed: u32,
    stop: &AtomicBool,
) -> (u64, u64, u64) {
    from.set_read_timeout(Some(Duration::from_millis(1)))
        .expect("timeout");
    let mut x = seed.wrapping_mul(0x9e37_79b9) | 1;
    let mut held: Vec<(Instant, Vec<u8>)> = Vec::new();
    let mut buf = vec![0u8; 65536];
    let (mut forwarded, mut dropped, mut early) = (0u64, 0u64, 0u64);
    while !stop.load(Ordering::Relaxed) {
        if let Ok((n, _)) = from.recv_from(&mut buf) {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            match x % 100 {
                0..2 => dropped += 1,
                2..27 => {
                    early += 1;
                    forwarded += 1;
                    let _ = via.send_to(&buf[..n], to);
                }
                _ => held.push((Instant::now() + Duration::from_millis(5), buf[..n].to_vec())),
            }
        }
        let now = Instant::now();
        held.retain(|(due, d)| {
            if *due > now {
                return true;
            }
            forwarded += 1;
            let _ = via.send_to(d, to);
            false
        });
    }
    (forwarded, dropped, early)
}

/// Sends `len` bytes from `from_ns` to a listener in `to_ns` on `addr` and checks they arrive
/// exactly, the whole transfer within `limit`.
fn transfer(from_ns: &str, to_ns: &str, addr: &str, len: usize, limit: Duration) {
    let addr = addr.parse().expect("addr");
    let data = pattern(0x9e37_79b9 ^ len as u32, len);
    tcp_transfer(from_ns, to_ns, addr, &data, Bounds::whole(limit));
}

/// A forged data message (type 4) for receiver index `index`, with `body` bytes after the
/// 16-byte header.
fn forged_data(index: u32, counter: u64, body: &[u8]) -> Vec<u8> {
    let mut d = vec![4u8, 0, 0, 0];
    d.extend_from_slice(&index.to_le_bytes());
    d.extend_from_slice(&counter.to_le_bytes());
    d.extend_from_slice(body);
    d
}

/// Sniffs, in the calling thread's namespace, one WireGuard data message (type 4, with a
/// non-empty payload, so not a keepalive) sent to 10.98.0.1:`PORT_A`, within `limit`. Returns
/// its UDP payload.
fn sniff_data_message(limit: Duration) -> Option<Vec<u8>> {
    // SAFETY: plain socket(2) call; the fd is closed below.
    let fd = unsafe {
        libc::socket(
            libc::AF_PACKET,
            libc::SOCK_DGRAM,
            // ETH_P_ALL: protocol-specific packet sockets see no outgoing packets.
            (libc::ETH_P_ALL as u16).to_be() as i32,
        )
    };
    if fd < 0 {
        eprintln!(
            "NOTE: no AF_PACKET socket ({}); the real replay is not exercised",
            std::io::Error::last_os_error()
        );
        return None;
    }
    let tv = libc::timeval {
        tv_sec: 0,
        tv_usec: 200_000,
    };
    // SAFETY: `tv` is a valid timeval for the duration of the call.
    unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_RCVTIMEO,
            (&tv as *const libc::timeval).cast(),
            std::mem::size_of::<libc::timeval>() as libc::socklen_t,
        );
    }
    let deadline = Instant::now() + limit;
    let mut buf = vec![0u8; 2048];
    let mut found = None;
    while found.is_none() && Instant::now() < deadline {
        // SAFETY: `buf` is valid for `buf.len()` bytes.
        let n = unsafe { libc::recv(fd, buf.as_mut_ptr().cast(), buf.len(), 0) };
        if n <= 0 {
            continue;
        }
        let p = &buf[..n as usize];
        if p.len() < 20 || p[0] >> 4 != 4 || p[9] != 17 {
            continue;
        }
        let ihl = usize::from(p[0] & 0x0f) * 4;
        let Some(udp) = p.get(ihl..) else { continue };
        if udp.len() < 8 || p[16..20] != [10, 98, 0, 1] {
            continue;
        }
        let dport = u16::from_be_bytes([udp[2], udp[3]]);
        let payload = &udp[8..];
        // Header 16 + tag 16: longer means a real packet inside, not a keepalive.
        if dport == PORT_A && payload.len() > 32 && payload[0] == 4 {
            found = Some(payload.to_vec());
        }
    }
    // SAFETY: `fd` is ours and open.
    unsafe { libc::close(fd) };
    found
}

#[test]
fn pqgate_pair_over_impaired_link() {
    if !tools_ready("pqgate_pair_over_impaired_link") {
        return;
    }
    let mut pair = Pair::new('t');
    if !pair.impair() {
        eprintln!("NOTE: impairing in userspace instead (a relay in namespace B)");
        pair.relay = Some(Relay::start(&pair.b));
    }
    pair.start();
    let (a, b) = (pair.a.to_string(), pair.b.to_string());
    pair.ping(&a, "10.101.0.2", 20);
    pair.ping(&b, "10.101.0.1", 10);
    let limit = Duration::from_secs(120);
    transfer(&a, &b, "10.101.0.2:5301", TRANSFER, limit);
    transfer(&b, &a, "10.101.0.1:5302", TRANSFER, limit);
    pair.ping(&a, "10.101.0.2", 5);
    let stderr = pair.stop_a();
    eprintln!("pqgate A stderr:\n{stderr}");
    assert!(counter(&stderr, "rx") > 0, "{stderr}");
    if let Some(relay) = pair.relay.take() {
        let (forwarded, dropped, early) = relay.stop();
        eprintln!("relay: {forwarded} forwarded, {dropped} dropped, {early} sent early");
        assert!(dropped > 0 && early > 0, "the relay impaired nothing");
    }
}

#[test]
fn pqgate_pair_survives_hostile_input() {
    if !tools_ready("pqgate_pair_survives_hostile_input") {
        return;
    }
    let mut pair = Pair::new('h');
    pair.start();
    let (a, b) = (pair.a.to_string(), pair.b.to_string());
    pair.ping(&a, "10.101.0.2", 20);
    pair.ping(&b, "10.101.0.1", 5);

    // A real data message from B to A, sniffed on B's veth while B pings A, for the replay.
    let sniffer = spawn_in(&b, || sniff_data_message(Duration::from_secs(10)));
    thread::sleep(Duration::from_millis(200));
    for _ in 0..5 {
        let _ = run_in(5, &b, &["ping", "-c", "3", "-i", "0.2", "10.101.0.1"]);
        if sniffer.is_finished() {
            break;
        }
    }
    let captured = sniffer.join().expect("sniffer thread");

    let to: SocketAddr = format!("10.98.0.1:{PORT_A}").parse().expect("addr");
    let mut junk = Vec::new();
    // Random garbage of assorted lengths, first byte outside 1..=4.
    for (i, len) in [0usize, 1, 3, 17, 64, 148, 500, 1400]
        .into_iter()
        .enumerate()
    {
        let mut d = pattern(i as u32 + 7, len);
        if let Some(first) = d.first_mut() {
            *first |= 0x80;
        }
        junk.push(d);
    }
    // Truncated handshake initiations (valid type, short lengths).
    for len in [4usize, 8, 40, 100, 147] {
        let mut d = pattern(len as u32, len);
        d[..4].copy_from_slice(&[1, 0, 0, 0]);
        junk.push(d);
    }
    // Data messages for receiver indices nobody owns, one of them sent twice.
    for index in [0u32, 1, 0xdead_beef, 0xffff_ffff] {
        junk.push(forged_data(index, 7, &pattern(index, 64)));
    }
    let dup = forged_data(0x1234_5678, 1, &pattern(99, 80));
    junk.extend([dup.clone(), dup]);
    // The sniffed real message, replayed several times.
    if let Some(p) = &captured {
        junk.extend([p.clone(), p.clone(), p.clone()]);
    }
    send_udp(&b, "10.98.0.2", to, junk);
    pair.ping(&a, "10.101.0.2", 5);

    // A handshake-initiation flood from many source ports, for at most 5 s, while the tunnel
    // is pinged and used.
    let stop = Arc::new(AtomicBool::new(false));
    let flood_stop = stop.clone();
    let flood = spawn_in(&b, move || -> usize {
        let socks: Vec<UdpSocket> = (0..64)
            .map(|_| UdpSocket::bind("10.98.0.2:0").expect("binding"))
            .collect();
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut sent = 0usize;
        let mut i = 0u32;
        while sent < 20_000 && Instant::now() < deadline && !flood_stop.load(Ordering::Relaxed) {
            let mut d = pattern(i.wrapping_mul(2_654_435_761).wrapping_add(1), 148);
            d[..4].copy_from_slice(&[1, 0, 0, 0]);
            if socks[i as usize % socks.len()].send_to(&d, to).is_ok() {
                sent += 1;
            }
            i = i.wrapping_add(1);
            if i.is_multiple_of(500) {
                thread::sleep(Duration::from_millis(20));
            }
        }
        sent
    });
    thread::sleep(Duration::from_millis(300));
    pair.ping(&a, "10.101.0.2", 10);
    transfer(&b, &a, "10.101.0.1:5311", FLOOD_TRANSFER, FLOOD_LIMIT);
    stop.store(true, Ordering::Relaxed);
    let flooded = flood.join().expect("flood thread");
    eprintln!("flood: {flooded} handshake initiations sent");
    assert!(flooded >= 1000, "only {flooded} flood datagrams sent");

    // And after.
    pair.ping(&a, "10.101.0.2", 5);
    pair.ping(&b, "10.101.0.1", 5);
    transfer(&a, &b, "10.101.0.2:5312", FLOOD_TRANSFER, FLOOD_LIMIT);
    let stderr = pair.stop_a();
    eprintln!("pqgate A stderr:\n{stderr}");
    // Every flood datagram fails mac1, so most (the socket may shed a few) count as garbage.
    assert!(
        counter(&stderr, "garbage") >= flooded as u64 / 2,
        "{stderr}"
    );
    assert!(counter(&stderr, "unknown peer") > 0, "{stderr}");
    if captured.is_some() {
        assert!(counter(&stderr, "replay") > 0, "{stderr}");
    } else {
        eprintln!("NOTE: no data message sniffed; the replay counter is not checked");
    }
}

/// Valid handshake initiations to the holder of `public_key` (base64), from `count` throwaway
/// static keys: mac1 is right, no peer knows the keys.
fn valid_initiations(public_key: &str, count: u8) -> Vec<Vec<u8>> {
    use gotatun::noise::Tunn;
    use gotatun::noise::index_table::IndexTable;
    use gotatun::noise::rate_limiter::RateLimiter;
    use gotatun::packet::{Packet, WgKind};
    use gotatun::x25519::{PublicKey, StaticSecret};

    let key = pqgate_core::wg::key::Key32::from_base64(
        pqgate_core::wg::key::KeyRole::Public,
        public_key.trim(),
    )
    .expect("public key");
    let responder = PublicKey::from(*key.as_bytes());
    (0..count)
        .map(|i| {
            let secret = StaticSecret::from([i.wrapping_mul(37).wrapping_add(11); 32]);
            let own = PublicKey::from(&secret);
            let limiter = Arc::new(RateLimiter::new(&own, 100));
            let mut tunn = Tunn::new(
                secret,
                responder,
                None,
                None,
                IndexTable::from_os_rng(),
                limiter,
            );
            let init = tunn
                .format_handshake_initiation(true)
                .expect("an initiation");
            let bytes = Packet::from(WgKind::HandshakeInit(init));
            bytes.as_ref().to_vec()
        })
        .collect()
}

#[test]
fn pqgate_pair_under_valid_handshake_flood() {
    if !tools_ready("pqgate_pair_under_valid_handshake_flood") {
        return;
    }
    const SOURCES: u32 = 200;
    let mut pair = Pair::new('f');
    pair.start();
    let (a, b) = (pair.a.to_string(), pair.b.to_string());
    pair.ping(&a, "10.101.0.2", 20);
    pair.ping(&b, "10.101.0.1", 5);
    // Flood sources 10.98.2.1-200 on B's veth; A routes its cookie replies back to them.
    for i in 1..=SOURCES {
        okw(&format!(
            "ip -n {b} address add 10.98.2.{i}/32 dev {}",
            pair.veth_b
        ));
    }
    ok(&[
        "ip",
        "-n",
        &a,
        "route",
        "add",
        "10.98.2.0/24",
        "dev",
        &pair.veth_a,
    ]);
    let inits = valid_initiations(&pair.pub_a, 16);
    let to: SocketAddr = format!("10.98.0.1:{PORT_A}").parse().expect("addr");
    let stop = Arc::new(AtomicBool::new(false));
    let flood_stop = stop.clone();
    let flood = spawn_in(&b, move || -> usize {
        let socks: Vec<UdpSocket> = (1..=SOURCES)
            .map(|i| UdpSocket::bind(format!("10.98.2.{i}:0")).expect("binding"))
            .collect();
        // One initiation per source per round, 80 rounds a second: each source stays below
        // the per-source limit (100/s), the sum (16,000/s) is far above what the handshake
        // thread can take with Diffie-Hellman work. At most 4 s.
        let deadline = Instant::now() + Duration::from_secs(4);
        let mut sent = 0usize;
        let mut round = 0usize;
        while Instant::now() < deadline && !flood_stop.load(Ordering::Relaxed) {
            let started = Instant::now();
            for (i, sock) in socks.iter().enumerate() {
                if sock.send_to(&inits[(i + round) % inits.len()], to).is_ok() {
                    sent += 1;
                }
            }
            round += 1;
            thread::sleep(Duration::from_millis(12).saturating_sub(started.elapsed()));
        }
        sent
    });
    thread::sleep(Duration::from_millis(300));
    // Established traffic during the flood.
    let pings = run_in(
        20,
        &b,
        &[
            "ping",
            "-c",
            "20",
            "-i",
            "0.1",
            "-W",
            "2",
            "-q",
            "10.101.0.1",
        ],
    );
    let pings = String::from_utf8_lossy(&pings.stdout).into_owned();
    transfer(&b, &a, "10.101.0.1:5313", FLOOD_TRANSFER, FLOOD_LIMIT);
    stop.store(true, Ordering::Relaxed);
    let flooded = flood.join().expect("flood thread");
    eprintln!("flood: {flooded} valid initiations sent; ping: {pings}");
    assert!(flooded >= 10_000, "only {flooded} initiations sent");
    let received: u32 = pings
        .split(" received")
        .next()
        .and_then(|s| s.rsplit(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    assert!(
        received >= 18,
        "established pings lost under the flood: {pings}"
    );
    pair.ping(&a, "10.101.0.2", 5);
    let stderr = pair.stop_a();
    eprintln!("pqgate A stderr:\n{stderr}");
    // Under load every initiation needs a cookie: most are answered with one, and only a
    // minority cost a Diffie-Hellman (they end as "unknown peer": no peer has those keys).
    let cookies = counter(&stderr, "cookies sent");
    let dh = counter(&stderr, "unknown peer");
    assert!(cookies > 0, "never went under load: {stderr}");
    assert!(
        dh < flooded as u64 / 2,
        "{dh} of {flooded} initiations got DH work: {stderr}"
    );
}
