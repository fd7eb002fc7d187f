//! The data-path keys of `[[wireguard]]` (`offload`, `queues`) end to end: `pqgate run` in a
//! network namespace of its own brings the interface up with the data path the config asks for
//! (as its "wireguard interface up" log line describes it), the defaults keep the offloads on
//! with one queue per CPU, a reload that changes them warns that they wait for a restart, and
//! `pqgate check` refuses an out-of-range `queues` with its key path. The namespace, the
//! process and the UAPI socket go on drop, even on panic; every wait is bounded.

#[allow(dead_code)]
#[path = "common/sys.rs"]
mod sys;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use pqgate::wg::interface::MAX_QUEUES;
use sys::{have, is_root, ok, run};

/// Any 32 bytes are a WireGuard private key (X25519 clamps them); another 32 stand for the peer.
const PRIVATE: &str = "yAnz5TF+lXXJte14tji3zlMNq+hd2rYUIgJBgB3fBmk=";
const PEER: &str = "HIgo9xNzJMWLKASShiTqIybxZ0U3wGLiUeJ1PKf8ykw=";
/// The data path with every offload off and one queue, as the engine describes it.
const PLAIN: &str =
    "1 queue(s); offloads: TUN vnet-hdr off, TSO off, USO off; UDP GSO off, GRO off";
/// Upper bound for a debug build to come up or reload on a loaded machine.
const WAIT: Duration = Duration::from_secs(60);

fn can_run(test: &str) -> bool {
    if !is_root() {
        eprintln!("SKIPPED: {test} needs root (ip netns, /dev/net/tun)");
        return false;
    }
    ["ip", "timeout", "kill"].iter().all(|t| have(t))
}

/// `pqgate run` in a namespace of its own; everything removed on drop.
struct Gate {
    ns: String,
    ifname: String,
    dir: tempfile::TempDir,
    child: Option<Child>,
}

impl Gate {
    /// Creates the namespace (loopback up); nothing runs yet.
    fn new(tag: &str) -> Self {
        let pid = std::process::id();
        let gate = Gate {
            ns: format!("pqwo-{pid}-{tag}"),
            ifname: format!("wo{tag}{pid}"),
            dir: tempfile::tempdir().expect("tempdir"),
            child: None,
        };
        // The guard exists before `ip netns add`, so a half-made namespace is deleted too.
        ok(&["ip", "netns", "add", &gate.ns]);
        ok(&["ip", "-n", &gate.ns, "link", "set", "dev", "lo", "up"]);
        gate
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
        let log = std::fs::File::create(self.log_path()).expect("log file");
        let child = Command::new("ip")
            .args([
                "netns",
                "exec",
                &self.ns,
                env!("CARGO_BIN_EXE_pqgate"),
                "run",
            ])
            .arg("-c")
            .arg(self.config_path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(log))
            .spawn()
            .expect("spawning pqgate");
        self.child = Some(child);
        self.wait_for("wireguard interface up", 1)
    }

    /// Waits until the log holds `count` lines containing `what`; returns the last of them.
    fn wait_for(&mut self, what: &str, count: usize) -> String {
        let deadline = Instant::now() + WAIT;
        loop {
            let text = self.log_text();
            let lines: Vec<&str> = text.lines().filter(|l| l.contains(what)).collect();
            if lines.len() >= count {
                return lines[count - 1].to_owned();
            }
            if let Some(c) = self.child.as_mut() {
                let exited = c.try_wait().expect("try_wait");
                assert!(exited.is_none(), "pqgate exited ({exited:?}):\n{text}");
            }
            assert!(Instant::now() < deadline, "no {what:?} in the log:\n{text}");
            thread::sleep(Duration::from_millis(100));
        }
    }

    fn pid(&self) -> String {
        self.child
            .as_ref()
            .expect("pqgate running")
            .id()
            .to_string()
    }

    /// SIGTERM, then a clean exit that removed the interface.
    fn stop(&mut self) {
        let mut child = self.child.take().expect("pqgate running");
        ok(&["kill", "-TERM", &child.id().to_string()]);
        let deadline = Instant::now() + WAIT;
        let status = loop {
            if let Some(s) = child.try_wait().expect("try_wait") {
                break s;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                break child.wait().expect("wait");
            }
            thread::sleep(Duration::from_millis(50));
        };
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
        if let Some(c) = self.child.as_mut() {
            let _ = c.kill();
            let _ = c.wait();
        }
        // A killed pqgate leaves its UAPI socket (host-wide, not per namespace).
        let _ = std::fs::remove_file(format!("/var/run/wireguard/{}.sock", self.ifname));
        let _ = run(10, &["ip", "netns", "del", &self.ns]);
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
                env!("CARGO_BIN_EXE_pqgate"),
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
