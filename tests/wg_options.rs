//! The data-path keys of `[[wireguard]]` (`offload`, `queues`) end to end: `pqgate run` in a
//! network namespace of its own brings the interface up with the data path the config asks for
//! (as its "wireguard interface up" log line describes it), the defaults keep the offloads on
//! with one queue per CPU, a reload that changes them warns that they wait for a restart, and
//! `pqgate check` refuses an out-of-range `queues` with its key path. The namespace, the
//! process and the UAPI socket go on drop, even on panic; every wait is bounded.

use std::path::{Path, PathBuf};
use std::thread;
use std::time::Duration;

use pqgate::wg::MAX_QUEUES;
use support::daemon::NsDaemon;
use support::netns::{Netns, remove_sockets};
use support::require_root;
use support::sys::{ok, run};

/// Any 32 bytes are a WireGuard private key (X25519 clamps them); another 32 stand for the peer.
const PRIVATE: &str = "yAnz5TF+lXXJte14tji3zlMNq+hd2rYUIgJBgB3fBmk=";
const PEER: &str = "HIgo9xNzJMWLKASShiTqIybxZ0U3wGLiUeJ1PKf8ykw=";
/// The data path with every offload off and one queue, as the engine describes it.
const PLAIN: &str =
    "1 queue(s); offloads: TUN vnet-hdr off, TSO off, USO off; UDP GSO off, GRO off";
/// Upper bound for a debug build to come up or reload on a loaded machine.
const WAIT: Duration = Duration::from_secs(60);

fn can_run(test: &str) -> bool {
    require_root(test, &["ip", "timeout", "kill"])
}

/// `pqgate run` in a namespace of its own; everything removed on drop.
struct Gate {
    ns: Netns,
    ifname: String,
    dir: tempfile::TempDir,
    pqgate: Option<NsDaemon>,
}

impl Gate {
    /// Creates the namespace (loopback up); nothing runs yet.
    fn new(tag: &str) -> Self {
        let pid = std::process::id();
        Gate {
            ns: Netns::new(format!("pqwo-{pid}-{tag}")),
            ifname: format!("wo{tag}{pid}"),
            dir: tempfile::tempdir().expect("tempdir"),
            pqgate: None,
        }
    }

    fn config_path(&self) -> PathBuf {
        self.dir.path().join("pqgate.toml")
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("pqgate.log")
    }

    /// Writes the config: one interface with one peer, `extra` lines in its section.
    fn write_config(&self, extra: &str) {
        let text = format!(
            "[admin]\nenabled = false\n\n[[wireguard]]\nname = \"{}\"\nprivate_key = \
             \"{PRIVATE}\"\naddress = [\"10.101.0.1/24\"]\n{extra}\n[[wireguard.peer]]\n\
             public_key = \"{PEER}\"\nallowed_ips = [\"10.101.0.2/32\"]\n",
            self.ifname
        );
        std::fs::write(self.config_path(), text).expect("writing the config");
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// Starts `pqgate run`; returns its "wireguard interface up" log line.
    fn start(&mut self) -> String {
        let pqgate = NsDaemon::spawn(&self.ns, &self.config_path(), self.log_path(), &[]);
        self.pqgate = Some(pqgate);
        self.wait_for("wireguard interface up", 1)
    }

    /// Waits until the log holds `count` lines containing `what`; returns the last of them.
    fn wait_for(&self, what: &str, count: usize) -> String {
        let pqgate = self.pqgate.as_ref().expect("pqgate running");
        pqgate.wait_log(what, count, WAIT)
    }

    fn pid(&self) -> String {
        self.pqgate
            .as_ref()
            .expect("pqgate running")
            .pid()
            .to_string()
    }

    /// SIGTERM, then a clean exit that removed the interface.
    fn stop(&mut self) {
        let mut pqgate = self.pqgate.take().expect("pqgate running");
        let status = pqgate.stop(WAIT);
        assert!(status.success(), "pqgate: {status}\n{}", self.log_text());
        let gone = run(
            5,
            &["ip", "-n", &self.ns, "link", "show", "dev", &self.ifname],
        );
        assert!(!gone.status.success(), "{} still exists", self.ifname);
    }
}

impl Drop for Gate {
    fn drop(&mut self) {
        self.pqgate = None;
        // A killed pqgate leaves its UAPI socket (host-wide, not per namespace); the namespace
        // goes when its guard drops, after this.
        remove_sockets([self.ifname.as_str()]);
    }
}

/// `offload = false`, `queues = 1`: the plain data path; a reload back to the defaults warns
/// that both keys wait for a restart, and the interface keeps running.
#[test]
fn the_config_asks_for_the_plain_data_path() {
    if !can_run("the_config_asks_for_the_plain_data_path") {
        return;
    }
    let mut gate = Gate::new("p");
    gate.write_config("offload = false\nqueues = 1\n");
    let up = gate.start();
    assert!(up.contains(PLAIN), "expected {PLAIN:?} in: {up}");

    gate.write_config("");
    ok(&["kill", "-HUP", &gate.pid()]);
    gate.wait_for("configuration reloaded", 1);
    let text = gate.log_text();
    let warning = text
        .lines()
        .find(|l| l.contains("takes effect at the next restart"))
        .unwrap_or_else(|| panic!("no restart warning:\n{text}"));
    assert!(
        warning.contains(&format!(
            "wireguard {}: offload, queues changed",
            gate.ifname
        )),
        "{warning}"
    );
    gate.stop();
}

/// No keys: the offloads on (this kernel has the TUN virtio-net header) and one queue per CPU,
/// at most [`MAX_QUEUES`].
#[test]
fn the_defaults_keep_the_offloads_on() {
    if !can_run("the_defaults_keep_the_offloads_on") {
        return;
    }
    let cpus = thread::available_parallelism().map_or(1, |n| n.get());
    let queues = cpus.clamp(1, usize::from(MAX_QUEUES));
    let mut gate = Gate::new("d");
    gate.write_config("");
    let up = gate.start();
    let want = format!("{queues} queue(s); offloads: TUN vnet-hdr on");
    assert!(up.contains(&want), "expected {want:?} in: {up}");
    gate.stop();
}

/// `queues = 0` and one more than [`MAX_QUEUES`]: `pqgate check` fails naming the key.
#[test]
fn check_refuses_queues_out_of_range() {
    let dir = tempfile::tempdir().expect("tempdir");
    for bad in [0, MAX_QUEUES + 1] {
        let path: &Path = &dir.path().join("bad.toml");
        let text =
            format!("[[wireguard]]\nname = \"wg0\"\nprivate_key = \"{PRIVATE}\"\nqueues = {bad}\n");
        std::fs::write(path, text).expect("writing the config");
        let out = run(
            60,
            &[
                support::pqgate_bin(),
                "check",
                "-c",
                &path.to_string_lossy(),
            ],
        );
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "queues = {bad} accepted: {stderr}");
        assert!(
            stderr.contains(&format!("wireguard[0].queues: {bad} is out of range")),
            "{stderr}"
        );
    }
}
