//! Dropping capabilities, in a child process (`pqgate caps-probe`) so this test runner keeps
//! its own: the sets after the drop as /proc reports them, and whether a port below
//! `ip_unprivileged_port_start` can still be bound on loopback.

use std::net::TcpListener;
use std::process::{Command, Stdio};

use pqgate::net::caps::{Cap, CapSets};
use support::require_root;

const NET_BIND: u64 = 1 << 10;

/// Runs the probe; returns its JSON report.
fn probe(keep: &str, bind: &str) -> serde_json::Value {
    probe_under(&[], keep, bind)
}

/// Runs the probe under `wrapper` (a command prefix); returns its JSON report.
fn probe_under(wrapper: &[&str], keep: &str, bind: &str) -> serde_json::Value {
    let pqgate = support::pqgate_bin();
    let mut argv: Vec<&str> = wrapper.to_vec();
    argv.extend([pqgate, "caps-probe", "--keep", keep, "--bind", bind]);
    let out = Command::new(argv[0])
        .args(&argv[1..])
        .stdin(Stdio::null())
        .output()
        .expect("running pqgate caps-probe");
    assert!(
        out.status.success(),
        "caps-probe --keep {keep:?}: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("probe JSON")
}

fn mask(report: &serde_json::Value, when: &str, set: &str) -> u64 {
    report[when][set]
        .as_u64()
        .unwrap_or_else(|| panic!("{when}.{set} in {report}"))
}

/// A loopback port below the unprivileged limit that is free now, or None if every port is
/// unprivileged here.
fn privileged_port() -> Option<u16> {
    let start: u16 = std::fs::read_to_string("/proc/sys/net/ipv4/ip_unprivileged_port_start")
        .ok()?
        .trim()
        .parse()
        .ok()?;
    (600..start.min(1024)).find(|p| TcpListener::bind(("127.0.0.1", *p)).is_ok())
}

#[test]
fn child_keeps_only_what_it_asked_for() {
    if !require_root("child_keeps_only_what_it_asked_for", &[]) {
        return;
    }
    let mine = CapSets::current().unwrap();
    assert!(
        mine.permitted & NET_BIND != 0 && mine.permitted & Cap::SETPCAP.bit() != 0,
        "root without CAP_NET_BIND_SERVICE/CAP_SETPCAP: {mine:?}"
    );
    let Some(port) = privileged_port() else {
        panic!("no free loopback port below ip_unprivileged_port_start");
    };
    let addr = format!("127.0.0.1:{port}");

    let kept = probe("net_bind_service", &addr);
    assert!(
        mask(&kept, "before", "effective") & !NET_BIND != 0,
        "{kept}"
    );
    for set in ["effective", "permitted", "bounding"] {
        assert_eq!(mask(&kept, "after", set), NET_BIND, "{set}: {kept}");
    }
    assert_eq!(mask(&kept, "after", "inheritable") & !NET_BIND, 0, "{kept}");
    assert_eq!(mask(&kept, "after", "ambient") & !NET_BIND, 0, "{kept}");
    assert_eq!(kept["bounding_trimmed"], true);
    assert_eq!(kept["bind"], "ok", "{kept}");

    let none = probe("", &addr);
    for set in [
        "effective",
        "permitted",
        "inheritable",
        "bounding",
        "ambient",
    ] {
        assert_eq!(mask(&none, "after", set), 0, "{set}: {none}");
    }
    assert_eq!(none["bind"], "PermissionDenied", "{none}");

    // The runner itself still has what it had.
    assert_eq!(CapSets::current().unwrap(), mine);
}

/// As under pqgate.service: an unprivileged user with CAP_NET_ADMIN and CAP_NET_BIND_SERVICE
/// ambient, the bounding set already limited, no CAP_SETPCAP, no new privileges.
#[test]
fn unprivileged_service_user_keeps_net_admin_ambient_for_its_helpers() {
    if !require_root(
        "unprivileged_service_user_keeps_net_admin_ambient_for_its_helpers",
        &["setpriv"],
    ) {
        return;
    }
    let port = privileged_port().expect("a free loopback port below 1024");
    let service = [
        "setpriv",
        "--reuid=65534",
        "--regid=65534",
        "--clear-groups",
        "--inh-caps=-all,+net_admin,+net_bind_service",
        "--ambient-caps=+net_admin,+net_bind_service",
        "--bounding-set=-all,+net_admin,+net_bind_service",
        "--no-new-privs",
    ];
    let report = probe_under(&service, "net_admin", &format!("127.0.0.1:{port}"));
    let admin = Cap::NET_ADMIN.bit();
    assert_eq!(
        mask(&report, "before", "ambient"),
        admin | NET_BIND,
        "{report}"
    );
    for set in ["effective", "permitted", "inheritable", "ambient"] {
        assert_eq!(mask(&report, "after", set), admin, "{set}: {report}");
    }
    // Without CAP_SETPCAP the bounding set stays as the unit set it.
    assert_eq!(report["bounding_trimmed"], false);
    assert_eq!(mask(&report, "after", "bounding"), admin | NET_BIND);
    assert_eq!(report["bind"], "PermissionDenied", "{report}");
}
