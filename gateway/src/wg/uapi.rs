//! The cross-platform UAPI socket (`/var/run/wireguard/IFACE.sock`), so that the stock `wg`
//! tool can read (`wg show`) and change (`wg set`, `wg syncconf`) a running `pqgate wg up`.
//!
//! Protocol: `get=1\n\n` or `set=1\n` + `key=value` lines + `\n`; the reply ends with
//! `errno=N\n\n`. Errors are negative errno values, as wireguard-go sends them (wg accepts
//! both signs). A `set` is parsed completely before anything is applied, so a bad request
//! changes nothing. A new `private_key` ends every peer's session (gotatun's
//! `set_static_private`). `fwmark` sets SO_MARK on every tunnel socket (0 clears it) before the
//! peer changes; if the kernel refuses it, its errno is returned and nothing else is applied.
//! Refused with `-EOPNOTSUPP`, before anything is applied: a `listen_port` other than the bound
//! one (the sockets are bound once).

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::SocketAddr;
use std::os::fd::AsFd;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, SystemTime};

use pqgate_core::wg::IpCidr;

use super::engine::{Engine, PeerChange, PeerStatus, RouteDelta, TICK};
use super::setup;

/// The directory wg(8) searches for `*.sock`.
pub(crate) const SOCKET_DIR: &str = "/var/run/wireguard";
/// Largest request (all lines together).
const MAX_REQUEST: u64 = 1 << 20;
/// Most lines in one request.
const MAX_LINES: usize = 65_536;
/// How long a connection may stay silent.
const IO_TIMEOUT: Duration = Duration::from_secs(5);
/// Connections served at once.
const MAX_CONNECTIONS: usize = 16;

const EINVAL: i32 = 22;
const EIO: i32 = 5;
const EOPNOTSUPP: i32 = 95;

/// A parsed `set` request.
#[derive(Debug, Default, PartialEq)]
pub(crate) struct SetRequest {
    /// `private_key`.
    pub private_key: Option<[u8; 32]>,
    /// `listen_port`.
    pub listen_port: Option<u16>,
    /// `fwmark`.
    pub fwmark: Option<u32>,
    /// `replace_peers=true`.
    pub replace_peers: bool,
    /// Peer sections in order.
    pub peers: Vec<PeerChange>,
}

fn hex_key(v: &str) -> Option<[u8; 32]> {
    if v.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, o) in out.iter_mut().enumerate() {
        *o = u8::from_str_radix(v.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

fn hex(k: &[u8; 32]) -> String {
    k.iter().map(|b| format!("{b:02x}")).collect()
}

fn flag(v: &str) -> Result<bool, i32> {
    match v {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(EINVAL),
    }
}

/// Parses the `key=value` lines of a `set` (without `set=1` and the blank line).
pub(crate) fn parse_set<'a>(lines: impl IntoIterator<Item = &'a str>) -> Result<SetRequest, i32> {
    let mut req = SetRequest::default();
    for line in lines {
        let (k, v) = line.split_once('=').ok_or(EINVAL)?;
        if k == "public_key" {
            req.peers.push(PeerChange {
                public_key: hex_key(v).ok_or(EINVAL)?,
                ..PeerChange::default()
            });
            continue;
        }
        let Some(peer) = req.peers.last_mut() else {
            match k {
                "private_key" => req.private_key = Some(hex_key(v).ok_or(EINVAL)?),
                "listen_port" => req.listen_port = Some(v.parse().map_err(|_| EINVAL)?),
                "fwmark" => req.fwmark = Some(v.parse().map_err(|_| EINVAL)?),
                "replace_peers" => req.replace_peers = flag(v)?,
                _ => return Err(EINVAL),
            }
            continue;
        };
        match k {
            "remove" => peer.remove = flag(v)?,
            "update_only" => peer.update_only = flag(v)?,
            "preshared_key" => {
                let key = hex_key(v).ok_or(EINVAL)?;
                peer.preshared_key = Some((key != [0; 32]).then_some(key));
            }
            "endpoint" => {
                let e: SocketAddr = v.parse().map_err(|_| EINVAL)?;
                peer.endpoint = Some(e);
            }
            "persistent_keepalive_interval" => {
                let s: u16 = v.parse().map_err(|_| EINVAL)?;
                peer.persistent_keepalive = Some((s != 0).then_some(s));
            }
            "replace_allowed_ips" => peer.replace_allowed_ips = flag(v)?,
            "allowed_ip" => {
                let c: IpCidr = v.parse().map_err(|_| EINVAL)?;
                peer.allowed_ips.push(c.network());
            }
            "protocol_version" if v == "1" => {}
            _ => return Err(EINVAL),
        }
    }
    Ok(req)
}

/// The body of a `get` reply (without `errno`).
pub(crate) fn format_get(
    private_key: &[u8; 32],
    listen_port: u16,
    fwmark: u32,
    peers: &[PeerStatus],
) -> String {
    let mut out = format!(
        "private_key={}\nlisten_port={listen_port}\n",
        hex(private_key)
    );
    if fwmark != 0 {
        out.push_str(&format!("fwmark={fwmark}\n"));
    }
    for p in peers {
        let since = p
            .last_handshake
            .and_then(|t| t.duration_since(SystemTime::UNIX_EPOCH).ok())
            .unwrap_or_default();
        out.push_str(&format!(
            "public_key={}\npreshared_key={}\nprotocol_version=1\n",
            hex(&p.public_key),
            hex(&p.preshared_key.unwrap_or([0; 32]))
        ));
        if let Some(e) = p.endpoint {
            out.push_str(&format!("endpoint={e}\n"));
        }
        out.push_str(&format!(
            "last_handshake_time_sec={}\nlast_handshake_time_nsec={}\ntx_bytes={}\nrx_bytes={}\n\
             persistent_keepalive_interval={}\n",
            since.as_secs(),
            since.subsec_nanos(),
            p.tx_bytes,
            p.rx_bytes,
            p.persistent_keepalive.unwrap_or(0)
        ));
        for a in &p.allowed_ips {
            out.push_str(&format!("allowed_ip={a}\n"));
        }
    }
    out
}

/// The UAPI server of one interface; stops with the engine, and removes its socket on drop.
pub(crate) struct Server {
    path: PathBuf,
    thread: Option<thread::JoinHandle<()>>,
    engine: Arc<Engine>,
}

impl Server {
    /// Binds `SOCKET_DIR/NAME.sock` (replacing a stale socket nothing listens on) and starts
    /// the accepting thread.
    pub(crate) fn start(name: &str, engine: Arc<Engine>) -> io::Result<Self> {
        std::fs::create_dir_all(SOCKET_DIR)?;
        std::fs::set_permissions(SOCKET_DIR, std::fs::Permissions::from_mode(0o755))?;
        let path = Path::new(SOCKET_DIR).join(format!("{name}.sock"));
        if let Ok(meta) = std::fs::symlink_metadata(&path) {
            if !meta.file_type().is_socket() {
                return Err(io::Error::new(
                    io::ErrorKind::AlreadyExists,
                    format!("{} exists and is not a socket", path.display()),
                ));
            }
            if UnixStream::connect(&path).is_ok() {
                return Err(io::Error::new(
                    io::ErrorKind::AddrInUse,
                    format!("{} is in use by another process", path.display()),
                ));
            }
            std::fs::remove_file(&path)?;
        }
        let listener = UnixListener::bind(&path)?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
        listener.set_nonblocking(true)?;
        let iface = name.to_owned();
        let e = Arc::clone(&engine);
        let thread = thread::Builder::new()
            .name("wg-uapi".to_owned())
            .spawn(move || accept_loop(&listener, &e, &iface))?;
        Ok(Self {
            path,
            thread: Some(thread),
            engine,
        })
    }

    /// The socket's path.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.engine.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        let _ = std::fs::remove_file(&self.path);
    }
}

fn accept_loop(listener: &UnixListener, engine: &Arc<Engine>, iface: &str) {
    let active = Arc::new(AtomicUsize::new(0));
    while !engine.stop.load(Ordering::Relaxed) {
        let stream = match listener.accept() {
            Ok((s, _)) => s,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                // Wakes as soon as a client connects (`wg set` latency), or after a tick to
                // check `stop`.
                if crate::net::poll::wait_readable(listener.as_fd(), TICK).is_err() {
                    thread::sleep(TICK);
                }
                continue;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                eprintln!("pqgate: uapi: accept: {e}");
                thread::sleep(TICK);
                continue;
            }
        };
        if active.load(Ordering::Relaxed) >= MAX_CONNECTIONS {
            continue; // dropped: the client sees the connection close
        }
        active.fetch_add(1, Ordering::Relaxed);
        let (e, a, name) = (Arc::clone(engine), Arc::clone(&active), iface.to_owned());
        let spawned = thread::Builder::new()
            .name("wg-uapi-conn".to_owned())
            .spawn(move || {
                let _ = serve(stream, &e, &name);
                a.fetch_sub(1, Ordering::Relaxed);
            });
        if spawned.is_err() {
            active.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

/// Reads one line (without `\n`), bounded by what is left of the request budget.
fn read_line(r: &mut impl BufRead, budget: &mut u64) -> io::Result<Option<String>> {
    let mut buf = Vec::new();
    let n = r.by_ref().take(*budget).read_until(b'\n', &mut buf)?;
    if n == 0 {
        return Ok(None);
    }
    *budget = budget.saturating_sub(n as u64);
    if buf.pop() != Some(b'\n') {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "request too large or cut short",
        ));
    }
    String::from_utf8(buf)
        .map(Some)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "not UTF-8"))
}

fn serve(stream: UnixStream, engine: &Engine, iface: &str) -> io::Result<()> {
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(IO_TIMEOUT))?;
    stream.set_write_timeout(Some(IO_TIMEOUT))?;
    let mut w = stream.try_clone()?;
    let mut r = BufReader::new(stream);
    loop {
        let mut budget = MAX_REQUEST;
        let Some(cmd) = read_line(&mut r, &mut budget)? else {
            return Ok(());
        };
        match cmd.as_str() {
            "get=1" => {
                if read_line(&mut r, &mut budget)?.as_deref() != Some("") {
                    w.write_all(format!("errno=-{EINVAL}\n\n").as_bytes())?;
                    return Ok(());
                }
                let port = engine.local_addr().map(|a| a.port()).unwrap_or(0);
                let body = format_get(
                    &engine.private_key(),
                    port,
                    engine.fwmark(),
                    &engine.peers(),
                );
                w.write_all(format!("{body}errno=0\n\n").as_bytes())?;
            }
            "set=1" => {
                let mut lines = Vec::new();
                loop {
                    let Some(l) = read_line(&mut r, &mut budget)? else {
                        return Ok(()); // cut short: apply nothing
                    };
                    if l.is_empty() {
                        break;
                    }
                    if lines.len() >= MAX_LINES {
                        w.write_all(format!("errno=-{EINVAL}\n\n").as_bytes())?;
                        return Ok(());
                    }
                    lines.push(l);
                }
                let errno = match parse_set(lines.iter().map(String::as_str)) {
                    Ok(req) => apply(engine, iface, &req),
                    Err(e) => e,
                };
                let reply = if errno == 0 {
                    "errno=0\n\n".to_owned()
                } else {
                    format!("errno=-{errno}\n\n")
                };
                w.write_all(reply.as_bytes())?;
            }
            // As wireguard-go: an unknown command closes the connection with no reply.
            _ => return Ok(()),
        }
    }
}

/// Held while a configuration change is applied (a `set`, or a config reload), so that
/// concurrent changes cannot interleave a key change with peer creation or route updates. One
/// lock for the process: changes are rare and short.
pub(crate) fn config_lock() -> MutexGuard<'static, ()> {
    static SET: Mutex<()> = Mutex::new(());
    SET.lock().unwrap_or_else(|e| e.into_inner())
}

/// Checks what this slice cannot change, applies the peer changes and updates host routes.
/// Returns 0 or a positive errno.
fn apply(engine: &Engine, iface: &str, req: &SetRequest) -> i32 {
    let _one = config_lock();
    let port = engine.local_addr().map(|a| a.port()).unwrap_or(0);
    if req.listen_port.is_some_and(|p| p != port) {
        return EOPNOTSUPP;
    }
    if let Some(mark) = req.fwmark
        && let Err(e) = engine.set_fwmark(mark)
    {
        return e.raw_os_error().unwrap_or(EIO);
    }
    let mut errno = 0;
    if let Some(k) = req.private_key {
        errno = update_routes(iface, &engine.set_private_key(k));
    }
    let delta = engine.apply(req.replace_peers, &req.peers);
    match update_routes(iface, &delta) {
        0 => errno,
        e => e,
    }
}

/// Removes and adds host routes for a change of routed prefixes (/0 excluded); 0 or `EIO`.
pub(crate) fn update_routes(iface: &str, delta: &RouteDelta) -> i32 {
    // A route may already be gone (removed by hand): not an error.
    let _ = setup::ip_batch(&setup::route_lines(iface, &delta.removed, "del"), true);
    match setup::ip_batch(&setup::route_lines(iface, &delta.added, "replace"), false) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("pqgate: uapi: {e}");
            EIO
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const K1: &str = "0101010101010101010101010101010101010101010101010101010101010101";
    const K2: &str = "0202020202020202020202020202020202020202020202020202020202020202";
    const ZERO: &str = "0000000000000000000000000000000000000000000000000000000000000000";

    #[test]
    fn set_parses_interface_and_peer_sections() {
        let text = format!(
            "private_key={K1}\nlisten_port=51820\nreplace_peers=true\npublic_key={K2}\n\
             preshared_key={K1}\nendpoint=[fd00::1]:51821\npersistent_keepalive_interval=25\n\
             replace_allowed_ips=true\nallowed_ip=10.0.0.5/24\nallowed_ip=fd00::2/128\n\
             protocol_version=1\npublic_key={K1}\nremove=true\npublic_key={K1}\n\
             update_only=true\npreshared_key={ZERO}\npersistent_keepalive_interval=0"
        );
        let req = parse_set(text.lines()).expect("valid");
        assert_eq!(req.private_key, Some([1; 32]));
        assert_eq!(req.listen_port, Some(51820));
        assert!(req.replace_peers);
        assert_eq!(req.peers.len(), 3);
        let p = &req.peers[0];
        assert_eq!(p.public_key, [2; 32]);
        assert_eq!(p.preshared_key, Some(Some([1; 32])));
        assert_eq!(p.endpoint, Some("[fd00::1]:51821".parse().unwrap()));
        assert_eq!(p.persistent_keepalive, Some(Some(25)));
        assert!(p.replace_allowed_ips);
        assert_eq!(p.allowed_ips[0].to_string(), "10.0.0.0/24");
        assert!(req.peers[1].remove);
        assert!(req.peers[2].update_only);
        assert_eq!(req.peers[2].preshared_key, Some(None));
        assert_eq!(req.peers[2].persistent_keepalive, Some(None));
    }

    #[test]
    fn bad_requests_give_einval() {
        for bad in [
            "nokey".to_owned(),
            "bogus=1".to_owned(),
            "public_key=zz".to_owned(),
            format!("public_key={K1}\nprivate_key={K1}"),
            format!("public_key={K1}\nendpoint=nope"),
            format!("public_key={K1}\nallowed_ip=10.0.0.0/33"),
            format!("public_key={K1}\nprotocol_version=2"),
            format!("public_key={K1}\nremove=yes"),
            "listen_port=70000".to_owned(),
            "remove=true".to_owned(),
        ] {
            assert_eq!(parse_set(bad.lines()), Err(EINVAL), "{bad}");
        }
    }

    #[test]
    fn get_lists_peers_in_wireguard_go_order() {
        let p = PeerStatus {
            public_key: [2; 32],
            preshared_key: None,
            endpoint: Some("10.0.0.1:9".parse().unwrap()),
            last_handshake: Some(SystemTime::UNIX_EPOCH + Duration::new(7, 8)),
            tx_bytes: 3,
            rx_bytes: 4,
            persistent_keepalive: Some(25),
            allowed_ips: vec!["10.1.0.0/16".parse().unwrap()],
            counts: Default::default(),
            agile: None,
        };
        let text = format_get(&[1; 32], 51820, 0, std::slice::from_ref(&p));
        assert_eq!(
            text,
            format!(
                "private_key={K1}\nlisten_port=51820\npublic_key={K2}\npreshared_key={ZERO}\n\
                 protocol_version=1\nendpoint=10.0.0.1:9\nlast_handshake_time_sec=7\n\
                 last_handshake_time_nsec=8\ntx_bytes=3\nrx_bytes=4\n\
                 persistent_keepalive_interval=25\nallowed_ip=10.1.0.0/16\n"
            )
        );
    }

    #[test]
    fn lines_are_bounded() {
        let mut budget = 8;
        let mut r = io::Cursor::new(b"get=1\n0123456789\n".to_vec());
        assert_eq!(
            read_line(&mut r, &mut budget).unwrap().as_deref(),
            Some("get=1")
        );
        assert!(read_line(&mut r, &mut budget).is_err());
    }
}
