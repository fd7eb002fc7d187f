//! The drain state every listener, connector and the admin endpoint share: the open-connection
//! count that drain waits on, and the draining flag that `/healthz` reports.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use tokio::sync::Notify;

/// Shared by every listener, connector and the admin endpoint.
#[derive(Default)]
pub(crate) struct DrainState {
    open: AtomicUsize,
    all_closed: Notify,
    draining: AtomicBool,
}

/// Held by a connection while it is open.
pub(crate) struct ConnectionGuard(Arc<DrainState>);

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        if self.0.open.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.all_closed.notify_waiters();
        }
    }
}

impl DrainState {
    /// Counts a connection as open until the guard drops.
    pub(crate) fn open_connection(self: &Arc<Self>) -> ConnectionGuard {
        self.open.fetch_add(1, Ordering::AcqRel);
        ConnectionGuard(self.clone())
    }

    /// Connections open now.
    pub(crate) fn open_connections(&self) -> usize {
        self.open.load(Ordering::Acquire)
    }

    /// Marks the process as draining.
    pub(crate) fn start_draining(&self) {
        self.draining.store(true, Ordering::Release);
    }

    /// Whether the process is draining.
    pub(crate) fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Acquire)
    }

    /// Waits until no connection is open or `limit` passes; true if all closed.
    pub(crate) async fn wait_all_closed(&self, limit: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let closed = self.all_closed.notified();
            if self.open_connections() == 0 {
                return true;
            }
            if tokio::time::timeout_at(deadline, closed).await.is_err() {
                return self.open_connections() == 0;
            }
        }
    }
}
