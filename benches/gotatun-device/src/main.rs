//! Runs gotatun's WireGuard device on TUN interface NAME, configurable only through the
//! cross-platform UAPI socket `/var/run/wireguard/NAME.sock` (`wg setconf`, `wg show`), until
//! SIGTERM or SIGINT; exits non-zero if the device fails. Benchmark contender (c) of benches/wg.sh.
//!
//! Usage: `gotatun-device NAME [--udp-buffer BYTES]`. Addresses, MTU and link state are set with
//! `ip`, exactly as for `wireguard-go -f NAME`. Without `--udp-buffer` the UDP socket keeps the
//! kernel's default buffer sizes (gotatun's default, as for Debian's wireguard-go).

use std::error::Error as StdError;
use std::process::ExitCode;

use gotatun::device::{DeviceBuilder, uapi::UapiServer};
use tokio::signal::unix::{SignalKind, signal};

/// Where gotatun's `UapiServer::default_unix_socket` puts the socket (wg's search path).
const SOCK_DIR: &str = "/var/run/wireguard";
/// Linux `IFNAMSIZ` minus the terminating NUL.
const MAX_IFNAME: usize = 15;

/// Why the harness stopped, grouped by blame: the command line, the host, or the device.
#[derive(Debug, thiserror::Error)]
enum Error {
    #[error("usage: gotatun-device NAME [--udp-buffer BYTES] ({0})")]
    Usage(String),
    #[error("cannot start the tokio runtime")]
    Runtime(#[source] std::io::Error),
    #[error("cannot install the signal handlers")]
    Signal(#[source] std::io::Error),
    #[error("cannot create TUN interface {name}")]
    Tun {
        name: String,
        #[source]
        source: gotatun::device::Error,
    },
    #[error("cannot serve the UAPI socket {SOCK_DIR}/{name}.sock")]
    Uapi {
        name: String,
        #[source]
        source: Box<dyn StdError + Send + Sync>,
    },
    #[error("cannot start the device on {name}")]
    Build {
        name: String,
        #[source]
        source: gotatun::device::Error,
    },
    #[error("the device on {name} failed (TUN interface deleted?)")]
    Failed { name: String },
}

/// The parsed command line.
struct Args {
    name: String,
    udp_buffer: Option<usize>,
}

fn parse_args(mut it: impl Iterator<Item = String>) -> Result<Args, Error> {
    let mut name = None;
    let mut udp_buffer = None;
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--udp-buffer" => {
                let v = it
                    .next()
                    .ok_or_else(|| Error::Usage("--udp-buffer needs a value".into()))?;
                let n = v
                    .parse::<usize>()
                    .map_err(|_| Error::Usage(format!("bad size {v:?}")))?;
                udp_buffer = Some(n);
            }
            s if s.starts_with('-') => return Err(Error::Usage(format!("unknown option {s}"))),
            s if name.is_none() => name = Some(valid_name(s)?),
            s => return Err(Error::Usage(format!("unexpected argument {s:?}"))),
        }
    }
    let name = name.ok_or_else(|| Error::Usage("missing interface name".into()))?;
    Ok(Args { name, udp_buffer })
}

/// An interface name is also a file name under SOCK_DIR: no separators, no dot names.
fn valid_name(s: &str) -> Result<String, Error> {
    let ok = !s.is_empty()
        && s.len() <= MAX_IFNAME
        && s != "."
        && s != ".."
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b));
    if ok {
        Ok(s.to_owned())
    } else {
        Err(Error::Usage(format!("bad interface name {s:?}")))
    }
}

/// Brings the device up, then waits for a stop signal or a fatal device error.
async fn run(args: Args) -> Result<(), Error> {
    let mut term = signal(SignalKind::terminate()).map_err(Error::Signal)?;
    let mut int = signal(SignalKind::interrupt()).map_err(Error::Signal)?;
    let name = args.name;

    let uapi = UapiServer::default_unix_socket(&name, None, None).map_err(|e| Error::Uapi {
        name: name.clone(),
        source: e.into(),
    })?;
    let mut builder = DeviceBuilder::new().with_default_udp();
    if let Some(n) = args.udp_buffer {
        builder = builder.udp_recv_buffer_size(n).udp_send_buffer_size(n);
    }
    let builder = builder.create_tun(&name).map_err(|source| Error::Tun {
        name: name.clone(),
        source,
    })?;
    let mut device = builder
        .with_uapi(uapi)
        .build()
        .await
        .map_err(|source| Error::Build {
            name: name.clone(),
            source,
        })?;
    eprintln!("gotatun-device: {name} up, UAPI at {SOCK_DIR}/{name}.sock");

    let failed = tokio::select! {
        _ = term.recv() => false,
        _ = int.recv() => false,
        () = device.wait() => true,
    };
    device.stop().await;
    // gotatun leaves its socket file behind; wg would list a dead interface.
    let _ = std::fs::remove_file(format!("{SOCK_DIR}/{name}.sock"));
    if failed {
        return Err(Error::Failed { name });
    }
    eprintln!("gotatun-device: {name} stopped");
    Ok(())
}

fn main() -> ExitCode {
    let result = parse_args(std::env::args().skip(1)).and_then(|args| {
        tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .map_err(Error::Runtime)?
            .block_on(run(args))
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let mut msg = format!("gotatun-device: {e}");
            let mut src = e.source();
            while let Some(s) = src {
                msg.push_str(&format!(": {s}"));
                src = s.source();
            }
            eprintln!("{msg}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(v: &[&str]) -> Result<Args, Error> {
        parse_args(v.iter().map(|s| s.to_string()))
    }

    #[test]
    fn parses_name_and_buffer() {
        let a = parse(&["wbc0", "--udp-buffer", "7340032"]).map_err(|e| e.to_string());
        let a = a.as_ref().map(|a| (a.name.as_str(), a.udp_buffer));
        assert_eq!(a, Ok(("wbc0", Some(7_340_032))));
        let b = parse(&["wbc1"]).map_err(|e| e.to_string());
        assert_eq!(b.as_ref().map(|a| a.udp_buffer), Ok(None));
    }

    #[test]
    fn refuses_bad_command_lines() {
        let cases: [&[&str]; 9] = [
            &[],
            &["../etc"],
            &["a/b"],
            &[".."],
            &["sixteen-chars-xx"],
            &["wbc0", "extra"],
            &["wbc0", "--udp-buffer"],
            &["wbc0", "--udp-buffer", "-1"],
            &["wbc0", "--bogus"],
        ];
        for bad in cases {
            assert!(matches!(parse(bad), Err(Error::Usage(_))), "{bad:?}");
        }
    }
}
