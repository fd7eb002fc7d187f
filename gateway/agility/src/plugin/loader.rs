//! Loads run-time plugins (placeholder until the C ABI loader lands).
