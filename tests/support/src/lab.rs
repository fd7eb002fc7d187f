//! The WireGuard lab: network namespace `a` (where pqgate runs) joined by a veth to `b` and,
//! when asked, by another to `c` (`a`'s end `NET.1`, the peer's `NET.2`), a temp dir for the
//! configs, and the pqgate and wireguard-go processes started on them. Drop stops pqgate with
//! SIGTERM (SIGKILL after 3 s), kills wireguard-go, removes the host-wide UAPI sockets they may
//! leave, then deletes the namespaces with every interface in them, even on panic.

use std::process::{Child, Command, Output};
use std::time::Duration;

use crate::netns::{
    Netns, kill_all, ping, remove_sockets, run_in, stop_cleanly, terminate_all, veth, wg_up,
    wireguard_go_peer,
};

/// Namespaces, interface names, processes; see the module documentation.
pub struct Lab {
    pub a: Netns,
    pub b: Netns,
    /// The third namespace of [`Lab::with_c`].
    pub c: Option<Netns>,
    /// The WireGuard interface names meant for `a`, `b`, `c` (unique per process and tag).
    pub if_a: String,
    pub if_b: String,
    pub if_c: String,
    /// The `a`–`b` veth: `a`'s end and `b`'s.
    pub veth_a: String,
    pub veth_b: String,
    pub dir: tempfile::TempDir,
    /// The pqgate processes in `a` and `b` (checked by [`Lab::ping`], stopped on drop).
    pub pq_a: Option<Child>,
    pub pq_b: Option<Child>,
    pub wggo: Vec<Child>,
}

impl Lab {
    /// Namespaces `PREFIX-PID-TAGa` and `...b`, joined on `net_b` (three octets); `tag` tells
    /// apart the labs of one test binary (at most 6 characters: interface names are short).
    pub fn new(prefix: &str, tag: &str, net_b: &str) -> Self {
        let pid = std::process::id();
        let ns = |x: &str| Netns::new(format!("{prefix}-{pid}-{tag}{x}"));
        let (a, b) = (ns("a"), ns("b"));
        let lab = Lab {
            a,
            b,
            c: None,
            if_a: format!("wa{tag}{pid}"),
            if_b: format!("wb{tag}{pid}"),
            if_c: format!("wc{tag}{pid}"),
            veth_a: format!("va{tag}{pid}"),
            veth_b: format!("vb{tag}{pid}"),
            dir: tempfile::tempdir().expect("tempdir"),
            pq_a: None,
            pq_b: None,
            wggo: Vec::new(),
        };
        veth(net_b, (&lab.a, &lab.veth_a), (&lab.b, &lab.veth_b));
        lab
    }

    /// [`Lab::new`] with a third namespace `c`, joined to `a` on `net_c`.
    pub fn with_c(prefix: &str, tag: &str, net_b: &str, net_c: &str) -> Self {
        let mut lab = Self::new(prefix, tag, net_b);
        let pid = std::process::id();
        let c = Netns::new(format!("{prefix}-{pid}-{tag}c"));
        let (va, vc) = (format!("vac{tag}{pid}"), format!("vc{tag}{pid}"));
        veth(net_c, (&lab.a, &va), (&c, &vc));
        lab.c = Some(c);
        lab
    }

    /// The third namespace; only a lab made by [`Lab::with_c`] has it.
    pub fn c(&self) -> &Netns {
        self.c.as_ref().expect("a lab made with Lab::with_c")
    }

    /// Starts a configured wireguard-go on `ifname` in `ns` (see `netns::wireguard_go_peer`).
    pub fn start_wireguard_go(&mut self, ns: &str, ifname: &str, conf: &str, addrs: &[&str]) {
        let child = wireguard_go_peer(ns, ifname, self.dir.path(), conf, addrs);
        self.wggo.push(child);
    }

    /// `pqgate wg up [extra]` of `conf` on `ifname` in `ns`, for the caller to spawn.
    pub fn wg_up(&self, ns: &str, ifname: &str, conf: &str, extra: &[&str]) -> Command {
        wg_up(ns, self.dir.path(), ifname, conf, extra)
    }

    /// Fails when a pqgate the lab started has exited.
    pub fn assert_alive(&self) {
        for (name, c) in [("A", &self.pq_a), ("B", &self.pq_b)] {
            if let Some(c) = c {
                assert!(
                    std::path::Path::new(&format!("/proc/{}", c.id())).exists(),
                    "pqgate {name} exited early"
                );
            }
        }
    }

    /// Pings `to` from `ns` until one reply, at most `tries` times; fails early when a
    /// pqgate has exited.
    pub fn ping(&self, ns: &str, to: &str, tries: u32) {
        ping(ns, to, tries, || self.assert_alive());
    }

    /// Stops pqgate A with SIGTERM and returns its stderr; asserts a clean, prompt exit.
    pub fn stop_a(&mut self) -> String {
        stop_cleanly(self.pq_a.take().expect("pqgate A running"), "pqgate A")
    }

    /// `wg ARGS` in `ns` (bounded).
    pub fn wg(&self, ns: &str, args: &[&str]) -> Output {
        run_in(10, ns, &[["wg"].as_slice(), args].concat())
    }

    /// `wg set IFACE peer PEER SETTINGS...` in `ns`, which must succeed.
    pub fn set_peer(&self, ns: &str, iface: &str, peer: &str, settings: &[&str]) -> String {
        let args: Vec<&str> = ["set", iface, "peer", peer]
            .into_iter()
            .chain(settings.iter().copied())
            .collect();
        self.wg_ok(ns, &args)
    }

    /// [`Lab::wg`] that must succeed; its stdout.
    pub fn wg_ok(&self, ns: &str, args: &[&str]) -> String {
        crate::sys::stdout_of(&format!("wg {args:?}"), self.wg(ns, args))
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        // SIGTERM first, so pqgate removes its UAPI socket and interface; SIGKILL after 3 s.
        let children = [self.pq_a.take(), self.pq_b.take()];
        terminate_all(
            children.into_iter().flatten().collect(),
            Duration::from_secs(3),
        );
        kill_all(&mut self.wggo);
        // A killed process leaves its UAPI socket behind (a host-wide path).
        remove_sockets([self.if_a.as_str(), self.if_b.as_str(), self.if_c.as_str()]);
        // The namespaces go when their guards drop, after this.
    }
}
