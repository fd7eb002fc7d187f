//! The TCP proxy around every listener and connector: the accept loop with admission, the
//! per-connection record (one log line, one set of metric updates), the backend connection
//! (optionally behind a PROXY v2 header), the bidirectional relay, the built-in page, and the
//! open-connection count that drain waits on.

pub(crate) mod accept;
pub(crate) mod backend;
pub(crate) mod builtin_page;
pub(crate) mod drain;
pub(crate) mod record;
pub(crate) mod relay;
