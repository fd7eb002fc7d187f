//! Dropping Linux capabilities once setup is done: every capability but the ones kept leaves
//! the effective, permitted, inheritable and ambient sets and (when CAP_SETPCAP allows it) the
//! bounding set. Capabilities belong to each thread: call [`drop_capabilities`] while the
//! process has one thread (before the async runtime starts); it refuses otherwise, since the
//! other threads would keep everything.

use std::io;

/// One Linux capability, by number (`linux/capability.h`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Cap(u8);

/// Capability names, indexed by number (`capabilities(7)`), without the `CAP_` prefix.
const NAMES: [&str; 41] = [
    "chown",
    "dac_override",
    "dac_read_search",
    "fowner",
    "fsetid",
    "kill",
    "setgid",
    "setuid",
    "setpcap",
    "linux_immutable",
    "net_bind_service",
    "net_broadcast",
    "net_admin",
    "net_raw",
    "ipc_lock",
    "ipc_owner",
    "sys_module",
    "sys_rawio",
    "sys_chroot",
    "sys_ptrace",
    "sys_pacct",
    "sys_admin",
    "sys_boot",
    "sys_nice",
    "sys_resource",
    "sys_time",
    "sys_tty_config",
    "mknod",
    "lease",
    "audit_write",
    "audit_control",
    "setfcap",
    "mac_override",
    "mac_admin",
    "syslog",
    "wake_alarm",
    "block_suspend",
    "audit_read",
    "perfmon",
    "bpf",
    "checkpoint_restore",
];

impl Cap {
    /// CAP_SETPCAP: needed to shrink the bounding set.
    pub const SETPCAP: Cap = Cap(8);
    /// CAP_NET_BIND_SERVICE: bind TCP/UDP ports below 1024.
    pub const NET_BIND_SERVICE: Cap = Cap(10);
    /// CAP_NET_ADMIN: TUN devices, links, addresses, routes, nftables.
    pub const NET_ADMIN: Cap = Cap(12);
    /// CAP_NET_RAW: raw sockets.
    pub const NET_RAW: Cap = Cap(13);

    /// The capability with this number, if it is one this build knows.
    pub fn from_number(n: u8) -> Option<Cap> {
        (usize::from(n) < NAMES.len()).then_some(Cap(n))
    }

    /// Parses `net_admin`, `NET_ADMIN` or `CAP_NET_ADMIN`.
    pub fn from_name(name: &str) -> Option<Cap> {
        let lower = name.to_ascii_lowercase();
        let bare = lower.strip_prefix("cap_").unwrap_or(&lower);
        let n = NAMES.iter().position(|n| *n == bare)?;
        u8::try_from(n).ok().map(Cap)
    }

    /// Its number.
    pub fn number(self) -> u8 {
        self.0
    }

    /// Its bit in a capability mask.
    pub fn bit(self) -> u64 {
        1 << self.0
    }
}

impl std::fmt::Display for Cap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match NAMES.get(usize::from(self.0)) {
            Some(n) => write!(f, "CAP_{}", n.to_ascii_uppercase()),
            None => write!(f, "CAP_{}", self.0),
        }
    }
}

/// Why capabilities could not be dropped. Each is the environment's doing, not a peer's.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CapsError {
    /// More than one thread: the others would keep their capabilities.
    #[error("cannot drop capabilities with {0} threads running: drop them before starting any")]
    Threads(u32),
    /// A capget/capset/prctl call failed.
    #[error("{call}: {source}")]
    Syscall {
        /// The call and its argument.
        call: String,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// /proc could not be read or parsed.
    #[error("reading {path}: {detail}")]
    Proc {
        /// The file.
        path: &'static str,
        /// What went wrong.
        detail: String,
    },
    /// After the drop a set still holds more than was kept (should not happen).
    #[error("capabilities still held after the drop: {0:?}")]
    Verify(CapSets),
}

/// The five capability sets of a thread, as masks (bit n = capability n).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct CapSets {
    /// CapInh.
    pub inheritable: u64,
    /// CapPrm.
    pub permitted: u64,
    /// CapEff.
    pub effective: u64,
    /// CapBnd.
    pub bounding: u64,
    /// CapAmb.
    pub ambient: u64,
}

const STATUS: &str = "/proc/thread-self/status";

impl CapSets {
    /// The calling thread's sets, from `/proc/thread-self/status`.
    pub fn current() -> Result<CapSets, CapsError> {
        let text = std::fs::read_to_string(STATUS).map_err(|e| CapsError::Proc {
            path: STATUS,
            detail: e.to_string(),
        })?;
        CapSets::parse(&text).ok_or_else(|| CapsError::Proc {
            path: STATUS,
            detail: "no Cap* lines".into(),
        })
    }

    /// Parses the `CapInh:` .. `CapAmb:` lines of a `/proc/PID/status` text.
    pub fn parse(status: &str) -> Option<CapSets> {
        let field = |name: &str| {
            let line = status.lines().find_map(|l| l.strip_prefix(name))?;
            u64::from_str_radix(line.trim(), 16).ok()
        };
        Some(CapSets {
            inheritable: field("CapInh:")?,
            permitted: field("CapPrm:")?,
            effective: field("CapEff:")?,
            bounding: field("CapBnd:")?,
            ambient: field("CapAmb:")?,
        })
    }
}

/// What [`drop_capabilities`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Dropped {
    /// The sets afterwards.
    pub after: CapSets,
    /// False when the bounding set was left alone for lack of CAP_SETPCAP (as under a systemd
    /// unit whose CapabilityBoundingSet= already bounds it; with NoNewPrivileges= nothing can
    /// be regained through it).
    pub bounding_trimmed: bool,
}

/// `struct __user_cap_header_struct`.
#[repr(C)]
struct CapHeader {
    version: u32,
    pid: libc::c_int,
}

/// `struct __user_cap_data_struct`; version 3 takes two (capabilities 0-31, 32-63).
#[repr(C)]
#[derive(Clone, Copy, Default)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

/// `_LINUX_CAPABILITY_VERSION_3`: 64-bit sets.
const CAP_VERSION_3: u32 = 0x2008_0522;

/// (effective, permitted, inheritable) of the calling thread.
fn capget() -> Result<(u64, u64, u64), CapsError> {
    let mut header = CapHeader {
        version: CAP_VERSION_3,
        pid: 0,
    };
    let mut data = [CapData::default(); 2];
    // SAFETY: capget reads the header and writes two CapData structs (version 3), both valid
    // and laid out as the kernel's structs (repr(C), u32/int fields).
    let rc = unsafe {
        libc::syscall(
            libc::SYS_capget,
            &mut header as *mut CapHeader,
            data.as_mut_ptr(),
        )
    };
    syscall_result(rc, "capget".into())?;
    let join = |f: fn(&CapData) -> u32| u64::from(f(&data[0])) | (u64::from(f(&data[1])) << 32);
    Ok((
        join(|d| d.effective),
        join(|d| d.permitted),
        join(|d| d.inheritable),
    ))
}

/// Sets the calling thread's effective, permitted and inheritable sets.
fn capset(effective: u64, permitted: u64, inheritable: u64) -> Result<(), CapsError> {
    let mut header = CapHeader {
        version: CAP_VERSION_3,
        pid: 0,
    };
    // Truncation is the point: each half goes in its own struct.
    let half = |m: u64, hi: bool| (if hi { m >> 32 } else { m & 0xffff_ffff }) as u32;
    let data = [false, true].map(|hi| CapData {
        effective: half(effective, hi),
        permitted: half(permitted, hi),
        inheritable: half(inheritable, hi),
    });
    // SAFETY: capset reads the header and two CapData structs (version 3), valid for the call.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_capset,
            &mut header as *mut CapHeader,
            data.as_ptr(),
        )
    };
    syscall_result(
        rc,
        format!("capset(eff={effective:#x}, prm={permitted:#x})"),
    )
}

fn prctl(op: libc::c_int, a: libc::c_ulong, b: libc::c_ulong) -> Result<libc::c_int, io::Error> {
    // SAFETY: the prctl operations used here (PR_CAPBSET_READ/DROP, PR_CAP_AMBIENT) take
    // integer arguments only; unused ones must be zero.
    let rc = unsafe { libc::prctl(op, a, b, 0 as libc::c_ulong, 0 as libc::c_ulong) };
    match rc < 0 {
        true => Err(io::Error::last_os_error()),
        false => Ok(rc),
    }
}

fn syscall_result(rc: libc::c_long, call: String) -> Result<(), CapsError> {
    match rc < 0 {
        true => Err(CapsError::Syscall {
            call,
            source: io::Error::last_os_error(),
        }),
        false => Ok(()),
    }
}

/// The number of threads in this process (`Threads:` in `/proc/self/status`).
fn thread_count() -> Result<u32, CapsError> {
    const PATH: &str = "/proc/self/status";
    let text = std::fs::read_to_string(PATH).map_err(|e| CapsError::Proc {
        path: PATH,
        detail: e.to_string(),
    })?;
    text.lines()
        .find_map(|l| l.strip_prefix("Threads:"))
        .and_then(|v| v.trim().parse().ok())
        .ok_or_else(|| CapsError::Proc {
            path: PATH,
            detail: "no Threads line".into(),
        })
}

/// Removes every capability not in `keep` from all five sets (the bounding set only with
/// CAP_SETPCAP permitted); raises the kept, permitted ones into the effective set. Kept
/// ambient capabilities stay ambient, so helpers the daemon runs (`ip`, `nft`) still get them.
pub fn drop_capabilities(keep: &[Cap]) -> Result<Dropped, CapsError> {
    let threads = thread_count()?;
    if threads != 1 {
        return Err(CapsError::Threads(threads));
    }
    let keep = keep.iter().fold(0u64, |m, c| m | c.bit());
    let (effective, permitted, inheritable) = capget()?;
    let bounding_trimmed = permitted & Cap::SETPCAP.bit() != 0;
    if bounding_trimmed {
        capset(effective | Cap::SETPCAP.bit(), permitted, inheritable)?;
        trim_bounding(keep)?;
    }
    lower_ambient(keep)?;
    let permitted = permitted & keep;
    capset(permitted, permitted, inheritable & keep)?;
    let after = CapSets::current()?;
    let extra = after.effective | after.permitted | after.inheritable | after.ambient;
    if extra & !keep != 0 || (bounding_trimmed && after.bounding & !keep != 0) {
        return Err(CapsError::Verify(after));
    }
    Ok(Dropped {
        after,
        bounding_trimmed,
    })
}

/// For tests in a child process (`pqgate caps-probe`, hidden): drops to `keep`, then tries to
/// bind `bind` (TCP), and returns the sets before and after and the bind outcome as JSON.
pub fn probe(keep: &[Cap], bind: Option<std::net::SocketAddr>) -> Result<String, CapsError> {
    let before = CapSets::current()?;
    let dropped = drop_capabilities(keep)?;
    let bind = bind.map(|addr| match std::net::TcpListener::bind(addr) {
        Ok(_) => "ok".to_owned(),
        Err(e) => format!("{:?}", e.kind()),
    });
    let report = serde_json::json!({
        "before": before,
        "after": dropped.after,
        "bounding_trimmed": dropped.bounding_trimmed,
        "bind": bind,
    });
    Ok(report.to_string())
}

/// Capabilities the running kernel knows: PR_CAPBSET_READ fails past the last one.
fn known_caps() -> impl Iterator<Item = u8> {
    (0u8..64).take_while(|&c| prctl(libc::PR_CAPBSET_READ, c.into(), 0).is_ok())
}

fn trim_bounding(keep: u64) -> Result<(), CapsError> {
    for c in known_caps().filter(|c| keep & (1 << c) == 0) {
        if prctl(libc::PR_CAPBSET_READ, c.into(), 0).is_ok_and(|v| v == 1) {
            prctl(libc::PR_CAPBSET_DROP, c.into(), 0).map_err(|source| CapsError::Syscall {
                call: format!("prctl(PR_CAPBSET_DROP, {c})"),
                source,
            })?;
        }
    }
    Ok(())
}

fn lower_ambient(keep: u64) -> Result<(), CapsError> {
    for c in known_caps().filter(|c| keep & (1 << c) == 0) {
        prctl(
            libc::PR_CAP_AMBIENT,
            libc::PR_CAP_AMBIENT_LOWER as libc::c_ulong,
            c.into(),
        )
        .map_err(|source| CapsError::Syscall {
            call: format!("prctl(PR_CAP_AMBIENT_LOWER, {c})"),
            source,
        })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        assert_eq!(Cap::from_name("CAP_NET_ADMIN"), Some(Cap::NET_ADMIN));
        assert_eq!(
            Cap::from_name("net_bind_service"),
            Some(Cap::NET_BIND_SERVICE)
        );
        assert_eq!(Cap::from_name("cap_sys_admin").map(Cap::number), Some(21));
        assert_eq!(Cap::from_name("net_wizard"), None);
        assert_eq!(Cap::NET_ADMIN.to_string(), "CAP_NET_ADMIN");
        assert_eq!(
            Cap::from_number(40).map(|c| c.to_string()).as_deref(),
            Some("CAP_CHECKPOINT_RESTORE")
        );
        assert_eq!(Cap::from_number(41), None);
    }

    #[test]
    fn parses_proc_status() {
        let text = "Name:\tx\nCapInh:\t0000000000000000\nCapPrm:\t0000000000001400\n\
                    CapEff:\t0000000000001000\nCapBnd:\t000001ffffffffff\nCapAmb:\t0000000000000400\n";
        let sets = CapSets::parse(text).unwrap();
        assert_eq!(
            sets.permitted,
            Cap::NET_ADMIN.bit() | Cap::NET_BIND_SERVICE.bit()
        );
        assert_eq!(sets.effective, Cap::NET_ADMIN.bit());
        assert_eq!(sets.bounding, (1 << 41) - 1);
        assert_eq!(sets.ambient, Cap::NET_BIND_SERVICE.bit());
        assert!(CapSets::parse("CapInh:\t0\n").is_none());
    }

    #[test]
    fn the_current_thread_agrees_with_capget() {
        let sets = CapSets::current().unwrap();
        let (eff, prm, inh) = capget().unwrap();
        assert_eq!(
            (sets.effective, sets.permitted, sets.inheritable),
            (eff, prm, inh)
        );
    }

    #[test]
    fn refuses_to_drop_with_several_threads() {
        // A second thread that lives across the call (the harness may run tests on its main
        // thread with --test-threads=1).
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        let other = std::thread::spawn(move || rx.recv());
        assert!(matches!(
            drop_capabilities(&[]),
            Err(CapsError::Threads(n)) if n > 1
        ));
        drop(tx);
        let _ = other.join();
        assert!(CapSets::current().is_ok());
    }
}
