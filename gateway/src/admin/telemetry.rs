//! Logging (tracing, text or JSON) and the Prometheus recorder, set up once per process.

use std::io::IsTerminal;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use pqgate_core::config::{LogConfig, LogFormat};
use pqgate_core::metrics as m;
use tracing_subscriber::EnvFilter;

/// Why telemetry could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub(crate) enum TelemetryError {
    /// `log.level` is not a valid filter.
    #[error("log.level: {0}")]
    Filter(#[from] tracing_subscriber::filter::ParseError),
    /// The metrics recorder could not be installed.
    #[error("metrics recorder: {0}")]
    Metrics(#[from] metrics_exporter_prometheus::BuildError),
}

/// Handshake latency buckets in seconds: 0.5 ms (an in-memory handshake) to 10 s (the default
/// handshake timeout).
const HANDSHAKE_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Checks `log.level` without installing anything (for `pqgate check`).
pub(crate) fn check_log_level(log: &LogConfig) -> Result<(), TelemetryError> {
    EnvFilter::builder().parse(&log.level)?;
    Ok(())
}

/// Installs the global tracing subscriber.
pub(crate) fn init_logging(log: &LogConfig) -> Result<(), TelemetryError> {
    let filter = EnvFilter::builder().parse(&log.level)?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    let _ = match log.format {
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
        LogFormat::Text => builder.try_init(),
    };
    Ok(())
}

/// Installs the Prometheus recorder and describes pqgate's metrics.
pub(crate) fn init_metrics() -> Result<PrometheusHandle, TelemetryError> {
    let handle = PrometheusBuilder::new()
        .set_buckets_for_metric(
            Matcher::Full(m::TLS_HANDSHAKE_SECONDS.to_owned()),
            HANDSHAKE_BUCKETS,
        )?
        .install_recorder()?;
    describe();
    Ok(handle)
}

fn describe() {
    use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
    describe_counter!(
        m::TLS_HANDSHAKES,
        "TLS handshakes by listener, group and outcome"
    );
    describe_counter!(
        m::TLS_SESSIONS,
        "Established TLS sessions by listener, group, suite and pq"
    );
    describe_histogram!(
        m::TLS_HANDSHAKE_SECONDS,
        Unit::Seconds,
        "TLS handshake duration"
    );
    describe_counter!(
        m::POLICY_REFUSALS,
        "Handshakes refused by the key-exchange policy"
    );
    describe_gauge!(m::ACTIVE_CONNECTIONS, "Connections open now");
    describe_counter!(
        m::CONNECTIONS_REJECTED,
        "Connections refused at max_connections"
    );
    describe_counter!(m::CONNECTIONS, "Finished connections by outcome");
    describe_counter!(m::BYTES, Unit::Bytes, "Relayed bytes by direction");
    describe_counter!(
        m::BACKEND_CONNECT_FAILURES,
        "Failed backend or remote connects"
    );
    describe_counter!(m::CONFIG_RELOADS, "Config reloads by outcome");
    describe_gauge!(m::UP, "1 while serving, 0 while draining");
}
