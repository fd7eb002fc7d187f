//! `pqgate wg up` (one tunnel from a wg-quick file, in the foreground) and `pqgate wg import`
//! (a wg-quick file as a `[[wireguard]]` config block).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Subcommand;

use crate::wg::interface::DataPathOptions;

#[derive(Subcommand)]
pub(crate) enum WgCommand {
    /// Run a tunnel from a wg-quick file in the foreground until SIGINT/SIGTERM; the interface
    /// is named after the file (wg0.conf -> wg0).
    Up {
        /// wg-quick(8) file, named IFNAME.conf.
        file: PathBuf,
        /// Plain one-packet IO: no TUN TSO/USO, no UDP GSO/GRO (for debugging).
        #[arg(long)]
        no_offload: bool,
        /// TUN queues and UDP sockets (default: one per CPU, at most 4).
        #[arg(long, value_parser = clap::value_parser!(u16)
            .range(1..=i64::from(crate::wg::interface::MAX_QUEUES)))]
        queues: Option<u16>,
    },
    /// Convert a wg-quick file to a `[[wireguard]]` config block (stdout, or -o FILE written
    /// 0600); keys inline unless --key-dir.
    Import {
        /// wg-quick(8) file, named IFNAME.conf.
        file: PathBuf,
        /// Write the TOML here instead of stdout.
        #[arg(short, long)]
        output: Option<PathBuf>,
        /// Write the private and pre-shared keys to new 0600 files in this directory and
        /// reference them (private_key_file, preshared_key_file) instead of inlining them.
        #[arg(long)]
        key_dir: Option<PathBuf>,
    },
}

/// Runs one `pqgate wg` subcommand.
pub(crate) fn run(command: WgCommand) -> anyhow::Result<ExitCode> {
    match command {
        WgCommand::Up {
            file,
            no_offload,
            queues,
        } => crate::wg::up::run(
            &file.to_string_lossy(),
            DataPathOptions {
                offload: !no_offload,
                queues,
            },
        )
        .map(|()| ExitCode::SUCCESS)
        .map_err(Into::into),
        WgCommand::Import {
            file,
            output,
            key_dir,
        } => import(&file, output.as_deref(), key_dir.as_deref()),
    }
}

/// `pqgate wg import`: the TOML on stdout unless written to `output`.
fn import(file: &Path, output: Option<&Path>, key_dir: Option<&Path>) -> anyhow::Result<ExitCode> {
    if let Some(text) = crate::wg::import::import(file, output, key_dir)? {
        print!("{text}");
    }
    Ok(ExitCode::SUCCESS)
}
