//! Host setup of a WireGuard interface: MTU, addresses, link up and routes for the peers'
//! AllowedIPs. This slice shells out to iproute2's `ip` (netlink directly is future work);
//! /0 prefixes are skipped with a warning, since wg-quick's fwmark policy routing is not done.

use std::process::Command;

use pqgate_core::wg::IpCidr;

use super::WgError;

/// Runs `ip ARGS`, failing with its stderr.
pub fn ip(args: &[&str]) -> Result<(), WgError> {
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

/// Sets the MTU, adds the addresses, brings the link up and routes `routes` into it. Returns
/// warnings for what was skipped.
pub fn configure(
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
    for r in routes {
        if r.prefix() == 0 {
            warnings.push(format!(
                "AllowedIPs {r}: no route added (default-route policy routing is not supported \
                 yet); traffic for it must be routed into {name} by hand"
            ));
            continue;
        }
        let family = if r.addr().is_ipv4() { "-4" } else { "-6" };
        ip(&[
            family,
            "route",
            "replace",
            &r.network().to_string(),
            "dev",
            name,
        ])?;
    }
    Ok(warnings)
}
