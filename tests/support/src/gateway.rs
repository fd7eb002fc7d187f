//! `pqgate run` on loopback: a process per test started on a config written to a file,
//! waited for until its `/healthz` answers, its stderr kept as a log for failure messages, and
//! killed on drop; its metrics over plain HTTP; the `[admin]` and `[[listener]]` TOML it runs.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream as StdStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::{Leaf, free_port};

/// Upper bound for waiting on a gateway to come up (debug build, loaded CI machine).
pub const START_TIMEOUT: Duration = Duration::from_secs(30);

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

    /// Starts `dir/gw.toml`: the `[admin]` sections on `admin`, then `rest` (listeners, ...).
    pub fn serve(dir: &Path, admin: SocketAddr, rest: &str) -> Self {
        Self::start(dir, "gw", &(admin_toml(admin) + rest), admin)
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
        let child = Command::new(crate::pqgate_bin())
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

    /// Polls (bounded) until the metric `prefix` reaches `at_least`; returns its last value.
    pub fn wait_metric(&self, prefix: &str, at_least: f64, limit: Duration) -> f64 {
        let deadline = Instant::now() + limit;
        loop {
            let value = self.metric(prefix);
            if value >= at_least || Instant::now() >= deadline {
                return value;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Fails (with the log) unless the log comes to contain `needle` within `limit`.
    pub fn assert_log(&self, needle: &str, limit: Duration) {
        assert!(
            self.wait_log(needle, limit),
            "no {needle:?} in the log:\n{}",
            self.log_text()
        );
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
