//! Facts about this process that libc reports and std does not: whether it runs as root.

/// Whether the effective user is root (uid 0).
pub(crate) fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}
