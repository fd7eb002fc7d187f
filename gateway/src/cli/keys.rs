//! `pqgate keygen` and `pqgate ca`: argument definitions and what each command writes and
//! prints. Private keys go only to files created 0600 (or, for `keygen wg` without `--out`, to
//! a stdout that is not a terminal); public keys, serials and paths go to stdout.

use std::io::{IsTerminal, Read, Write};
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use time::OffsetDateTime;
use zeroize::Zeroizing;

use crate::keys::KeysError;
use crate::keys::ca::{self, IssueRequest};
use crate::keys::file;
use crate::keys::index::{Reason, Usage};
use crate::keys::tls::{self, KeyAlg};
use crate::keys::wg;

/// Longest WireGuard key text read from stdin (a key is 44 characters plus a newline).
const MAX_STDIN: u64 = 1024;

/// `pqgate keygen ...`
#[derive(Debug, clap::Subcommand)]
pub(crate) enum KeygenCommand {
    /// A WireGuard private key (like `wg genkey`); with --out, written 0600 and the public key
    /// printed. Without --out the private key goes to stdout, which must not be a terminal.
    Wg {
        /// Key file to create (mode 0600, atomically).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Replace an existing file.
        #[arg(long, conflicts_with = "if_missing")]
        force: bool,
        /// Keep an existing file and print its public key (for first-boot units).
        #[arg(long, requires = "out")]
        if_missing: bool,
    },
    /// Print the public key of the WireGuard private key on stdin (like `wg pubkey`).
    WgPub,
    /// A TLS private key (PKCS#8 PEM, 0600), optionally with a self-signed certificate.
    Tls {
        /// Key algorithm.
        #[arg(long, value_enum)]
        alg: KeyAlg,
        /// Key file to create.
        #[arg(long)]
        out: PathBuf,
        /// Also write a self-signed certificate (server and client use) here.
        #[arg(long, value_name = "CERT.pem")]
        self_signed: Option<PathBuf>,
        /// DNS name or IP address for the certificate (repeatable; the first is the CN).
        #[arg(long = "name", requires = "self_signed")]
        names: Vec<String>,
        /// Certificate validity in days.
        #[arg(long, default_value_t = 365)]
        days: u32,
        /// Replace existing files.
        #[arg(long, conflicts_with = "if_missing")]
        force: bool,
        /// Do nothing when the key file exists.
        #[arg(long)]
        if_missing: bool,
    },
}

/// `pqgate ca ...`
#[derive(Debug, clap::Subcommand)]
pub(crate) enum CaCommand {
    /// Create a CA: DIR/ca.key (0600), DIR/ca.pem, DIR/index.toml.
    Init {
        /// CA directory (created 0700 if missing).
        #[arg(long)]
        dir: PathBuf,
        /// CA key algorithm (ML-DSA needs rustls peers; OpenSSL 3.0 verifies the classical ones).
        #[arg(long, value_enum, default_value = "ml-dsa-65")]
        alg: KeyAlg,
        /// CA common name.
        #[arg(long, default_value = "pqgate CA")]
        name: String,
        /// Validity in days.
        #[arg(long, default_value_t = 3650)]
        days: u32,
        /// Do nothing when DIR already holds a CA key.
        #[arg(long)]
        if_missing: bool,
    },
    /// Issue a certificate; prints its serial number.
    Issue(IssueArgs),
    /// Mark a certificate revoked (then run `ca crl`).
    Revoke {
        /// CA directory.
        #[arg(long)]
        dir: PathBuf,
        /// Serial number in hex (as `ca issue` or `openssl x509 -serial` print it).
        #[arg(long)]
        serial: String,
        /// Reason code put in the CRL.
        #[arg(long, value_enum)]
        reason: Option<Reason>,
    },
    /// Write a CRL of every revoked certificate.
    Crl {
        /// CA directory.
        #[arg(long)]
        dir: PathBuf,
        /// CRL file (PEM) to write or replace.
        #[arg(long)]
        out: PathBuf,
        /// Days until the CRL's nextUpdate.
        #[arg(long, default_value_t = 30)]
        days: u32,
    },
    /// List issued certificates.
    List {
        /// CA directory.
        #[arg(long)]
        dir: PathBuf,
    },
}

/// `pqgate ca issue` arguments.
#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("usage").args(["server", "client", "both"])))]
pub(crate) struct IssueArgs {
    /// CA directory.
    #[arg(long)]
    dir: PathBuf,
    /// Subject common name (also the DNS name when no --dns or --ip is given).
    #[arg(long)]
    name: String,
    /// DNS subject alternative name (repeatable).
    #[arg(long)]
    dns: Vec<String>,
    /// IP subject alternative name (repeatable).
    #[arg(long)]
    ip: Vec<IpAddr>,
    /// Server authentication only (the default).
    #[arg(long)]
    server: bool,
    /// Client authentication only.
    #[arg(long)]
    client: bool,
    /// Server and client authentication.
    #[arg(long)]
    both: bool,
    /// Validity in days (never beyond the CA's).
    #[arg(long, default_value_t = 365)]
    days: u32,
    /// Key algorithm (default: the CA's).
    #[arg(long, value_enum)]
    alg: Option<KeyAlg>,
    /// Private key file to create (0600).
    #[arg(long)]
    out_key: PathBuf,
    /// Certificate file to create.
    #[arg(long)]
    out_cert: PathBuf,
    /// Replace existing files.
    #[arg(long, conflicts_with = "if_missing")]
    force: bool,
    /// Do nothing when both files exist.
    #[arg(long)]
    if_missing: bool,
}

/// The wall clock, for certificate dates.
fn now() -> Result<OffsetDateTime, KeysError> {
    let secs = crate::net::clock::unix_ms().ok_or(KeysError::Clock)? / 1000;
    let secs = i64::try_from(secs).map_err(|_| KeysError::Clock)?;
    OffsetDateTime::from_unix_timestamp(secs).map_err(|_| KeysError::Clock)
}

fn print(line: &str) -> Result<(), KeysError> {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{line}")
        .and_then(|()| out.flush())
        .map_err(|source| KeysError::Stdio { source })
}

/// Runs `pqgate keygen ...`.
pub(crate) fn keygen(command: KeygenCommand) -> Result<(), KeysError> {
    match command {
        KeygenCommand::Wg {
            out: Some(out),
            force,
            if_missing,
        } => keygen_wg_file(&out, force, if_missing),
        KeygenCommand::Wg { out: None, .. } => keygen_wg_stdout(),
        KeygenCommand::WgPub => {
            let mut text = Zeroizing::new(String::new());
            std::io::stdin()
                .take(MAX_STDIN)
                .read_to_string(&mut text)
                .map_err(|source| KeysError::Stdio { source })?;
            print(&wg::public_key(&wg::parse(&text)?)?.to_base64())
        }
        KeygenCommand::Tls {
            alg,
            out,
            self_signed,
            names,
            days,
            force,
            if_missing,
        } => {
            if if_missing && out.exists() {
                eprintln!("{} exists: kept", out.display());
                return Ok(());
            }
            keygen_tls(alg, &out, self_signed.as_deref(), &names, days, force)
        }
    }
}

fn keygen_wg_file(out: &Path, force: bool, if_missing: bool) -> Result<(), KeysError> {
    if if_missing && out.exists() {
        let text =
            Zeroizing::new(
                std::fs::read_to_string(out).map_err(|source| KeysError::Read {
                    path: out.to_owned(),
                    source,
                })?,
            );
        return print(&wg::public_key(&wg::parse(&text)?)?.to_base64());
    }
    file::check_absent(out, force)?;
    let key = wg::generate()?;
    let text = Zeroizing::new(format!(
        "{}\n",
        Zeroizing::new(key.expose_base64()).as_str()
    ));
    file::write_atomic(out, text.as_bytes(), file::PRIVATE, force)?;
    print(&wg::public_key(&key)?.to_base64())
}

/// `wg genkey` behaviour, except that a terminal is refused: a key shown on screen ends up
/// in scrollback and terminal logs.
fn keygen_wg_stdout() -> Result<(), KeysError> {
    let stdout = std::io::stdout();
    if stdout.is_terminal() {
        return Err(KeysError::Terminal);
    }
    if let Some(mode) = stdout_file_mode()
        && mode & 0o077 != 0
    {
        eprintln!("warning: writing a private key to a file readable by others (mode {mode:o})");
    }
    let key = wg::generate()?;
    print(Zeroizing::new(key.expose_base64()).as_str())
}

/// The permission bits of stdout when it is a regular file.
fn stdout_file_mode() -> Option<u32> {
    use std::os::fd::AsFd;
    use std::os::unix::fs::PermissionsExt;
    let fd = std::io::stdout().as_fd().try_clone_to_owned().ok()?;
    let meta = std::fs::File::from(fd).metadata().ok()?;
    meta.is_file().then(|| meta.permissions().mode() & 0o777)
}

fn keygen_tls(
    alg: KeyAlg,
    out: &Path,
    cert: Option<&Path>,
    names: &[String],
    days: u32,
    force: bool,
) -> Result<(), KeysError> {
    file::check_absent(out, force)?;
    if let Some(cert) = cert {
        file::check_absent(cert, force)?;
    }
    let (signer, pem) = tls::generate(alg)?;
    let cert_pem = match cert {
        Some(_) => {
            let names = match names.is_empty() {
                true => vec!["localhost".to_owned()],
                false => names.to_vec(),
            };
            Some(tls::self_signed(&signer, &names, now()?, days)?)
        }
        None => None,
    };
    file::write_atomic(out, pem.as_bytes(), file::PRIVATE, force)?;
    if let (Some(path), Some(text)) = (cert, cert_pem) {
        file::write_atomic(path, text.as_bytes(), file::PUBLIC, force)?;
    }
    Ok(())
}

/// Runs `pqgate ca ...`.
pub(crate) fn ca(command: CaCommand) -> Result<(), KeysError> {
    match command {
        CaCommand::Init {
            dir,
            alg,
            name,
            days,
            if_missing,
        } => {
            if if_missing && dir.join(ca::KEY_FILE).exists() {
                eprintln!("{} exists: kept", dir.join(ca::KEY_FILE).display());
                return Ok(());
            }
            ca::init(&dir, &name, alg, days, now()?)?;
            print(&dir.join(ca::CERT_FILE).display().to_string())
        }
        CaCommand::Issue(args) => issue(args),
        CaCommand::Revoke {
            dir,
            serial,
            reason,
        } => {
            let entry = ca::revoke(&dir, &serial, reason, now()?)?;
            print(&format!("revoked {} ({})", entry.serial, entry.name))
        }
        CaCommand::Crl { dir, out, days } => {
            let pem = ca::crl(&dir, now()?, days)?;
            file::write_atomic(&out, pem.as_bytes(), file::PUBLIC, true)?;
            Ok(())
        }
        CaCommand::List { dir } => {
            let index = ca::list(&dir)?;
            print(
                "serial                            usage   alg         not_after   status  name",
            )?;
            let date = |secs| {
                OffsetDateTime::from_unix_timestamp(secs)
                    .map_or_else(|_| secs.to_string(), |t| t.date().to_string())
            };
            for e in index.certs {
                let status = match e.revoked_at {
                    Some(_) => "revoked",
                    None => "valid",
                };
                let usage = format!("{:?}", e.usage).to_lowercase();
                print(&format!(
                    "{:<33} {usage:<7} {:<11} {:<11} {status:<7} {}",
                    e.serial,
                    e.alg,
                    date(e.not_after),
                    e.name
                ))?;
            }
            Ok(())
        }
    }
}

fn issue(args: IssueArgs) -> Result<(), KeysError> {
    if args.if_missing && args.out_key.exists() && args.out_cert.exists() {
        eprintln!("{} exists: kept", args.out_cert.display());
        return Ok(());
    }
    file::check_absent(&args.out_key, args.force)?;
    file::check_absent(&args.out_cert, args.force)?;
    let usage = match (args.client, args.both) {
        (_, true) => Usage::Both,
        (true, false) => Usage::Client,
        (false, false) => Usage::Server,
    };
    let req = IssueRequest {
        name: args.name,
        dns: args.dns,
        ips: args.ip,
        usage,
        days: args.days,
        alg: args.alg,
    };
    let issued = ca::issue(&args.dir, &req, now()?)?;
    file::write_atomic(
        &args.out_key,
        issued.key_pem.as_bytes(),
        file::PRIVATE,
        args.force,
    )?;
    file::write_atomic(
        &args.out_cert,
        issued.cert_pem.as_bytes(),
        file::PUBLIC,
        args.force,
    )?;
    print(&issued.serial)
}

/// `pqgate pin`: the SHA-256 pin of the first certificate's public key in `cert`.
pub(crate) fn pin(cert: std::path::PathBuf) -> anyhow::Result<std::process::ExitCode> {
    let certs = crate::tls::material::load_certs(&cert, "certificate")?;
    let pin = crate::tls::client_config::spki_pin(&certs[0])?;
    println!("{pin}");
    Ok(std::process::ExitCode::SUCCESS)
}
