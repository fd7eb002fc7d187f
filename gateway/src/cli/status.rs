//! `pqgate status`: the running daemon's PQ PSK channels, fetched from its admin endpoint, as
//! text or JSON.

use std::net::SocketAddr;
use std::process::ExitCode;

/// Prints the status of the daemon whose admin endpoint is `admin`.
pub fn run(admin: SocketAddr, json: bool) -> anyhow::Result<ExitCode> {
    let v = crate::wg::pq::fetch_status(admin)?;
    match json {
        true => println!("{}", serde_json::to_string_pretty(&v)?),
        false => print!("{}", crate::wg::pq::render_text(&v)),
    }
    Ok(ExitCode::SUCCESS)
}
