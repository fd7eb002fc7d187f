//! `pqgate run -c CONFIG` inside a network namespace, its stderr kept in a log file: waited for
//! until its admin endpoint is healthy or its log shows a line, signalled, reloaded (SIGHUP and
//! one more reload outcome in the log), stopped with SIGTERM (SIGKILL when the time runs out)
//! and killed on drop, even on panic. Every wait is bounded and fails early when pqgate exits.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use crate::netns::{command_in, http_get};
use crate::sys::ok;

/// One `pqgate run` in a namespace.
pub struct NsDaemon {
    child: Option<Child>,
    /// The namespace it runs in.
    pub ns: String,
    /// Its stderr.
    pub log: PathBuf,
}

/// What a reload ends in, as the log says it.
pub const RELOAD_OUTCOMES: [&str; 2] = ["configuration reloaded", "reload rejected"];

impl NsDaemon {
    /// Starts `pqgate run -c config` in `ns` with `env` added; stdout discarded, stderr to `log`.
    pub fn spawn(ns: &str, config: &Path, log: PathBuf, env: &[(&str, &str)]) -> Self {
        let file = std::fs::File::create(&log).expect("log file");
        let child = command_in(ns, &[crate::pqgate_bin(), "run", "-c"])
            .arg(config)
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(Stdio::from(file))
            .spawn()
            .expect("spawning pqgate");
        NsDaemon {
            child: Some(child),
            ns: ns.to_owned(),
            log,
        }
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// pqgate's pid (`ip netns exec` execs it, so the child's).
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("pqgate running").id()
    }

    /// Whether the process is still there and not a zombie.
    pub fn alive(&self) -> bool {
        self.child.as_ref().is_some_and(|c| {
            std::fs::read_to_string(format!("/proc/{}/stat", c.id())).is_ok_and(|stat| {
                stat.rsplit_once(')')
                    .is_some_and(|(_, rest)| !rest.trim_start().starts_with('Z'))
            })
        })
    }

    /// Fails (with the log) when pqgate has exited.
    pub fn assert_alive(&self) {
        assert!(
            self.alive(),
            "pqgate in {} exited early:\n{}",
            self.ns,
            self.log_text()
        );
    }

    /// Waits until `GET /healthz` on `admin` inside the namespace answers 200.
    pub fn wait_healthy(&self, admin: SocketAddr, limit: Duration) {
        let deadline = Instant::now() + limit;
        while http_get(&self.ns, admin, "/healthz").is_none_or(|r| !r.starts_with("HTTP/1.1 200")) {
            self.assert_alive();
            assert!(
                Instant::now() < deadline,
                "pqgate in {} not healthy in {limit:?}:\n{}",
                self.ns,
                self.log_text()
            );
            thread::sleep(Duration::from_millis(100));
        }
    }

    /// Waits until the log holds `count` lines containing `needle`; returns the last of them.
    pub fn wait_log(&self, needle: &str, count: usize, limit: Duration) -> String {
        let deadline = Instant::now() + limit;
        loop {
            let text = self.log_text();
            let lines: Vec<&str> = text.lines().filter(|l| l.contains(needle)).collect();
            if lines.len() >= count {
                return lines[count - 1].to_owned();
            }
            self.assert_alive();
            assert!(
                Instant::now() < deadline,
                "no {needle:?} x{count} in the log:\n{text}"
            );
            thread::sleep(Duration::from_millis(50));
        }
    }

    /// `kill -SIG` to pqgate.
    pub fn signal(&self, sig: &str) {
        ok(&["kill", &format!("-{sig}"), &self.pid().to_string()]);
    }

    /// SIGHUP, then waits until the log holds one more line with any of `outcomes` than
    /// before; returns the log.
    pub fn reload(&self, outcomes: &[&str], limit: Duration) -> String {
        let count = |t: &str| {
            t.lines()
                .filter(|l| outcomes.iter().any(|o| l.contains(o)))
                .count()
        };
        let before = count(&self.log_text());
        self.signal("HUP");
        let deadline = Instant::now() + limit;
        loop {
            let text = self.log_text();
            if count(&text) > before {
                return text;
            }
            self.assert_alive();
            assert!(
                Instant::now() < deadline,
                "no reload outcome {outcomes:?}:\n{text}"
            );
            thread::sleep(Duration::from_millis(100));
        }
    }

    /// Waits up to `limit` for pqgate to exit; its status, `None` while it still runs.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<ExitStatus> {
        let child = self.child.as_mut().expect("pqgate started");
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = child.try_wait().expect("try_wait") {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGTERM, then its exit status; SIGKILL when it has not exited within `limit` (the
    /// status is then the kill's, never a success).
    pub fn stop(&mut self, limit: Duration) -> ExitStatus {
        self.signal("TERM");
        if let Some(status) = self.wait_exit(limit) {
            return status;
        }
        let child = self.child.as_mut().expect("pqgate started");
        let _ = child.kill();
        child.wait().expect("wait")
    }
}

impl Drop for NsDaemon {
    fn drop(&mut self) {
        if let Some(c) = self.child.as_mut() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
