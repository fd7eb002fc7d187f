//! A layer-3 TUN device (`IFF_TUN | IFF_NO_PI`), opened with a virtio-net header and TSO (and
//! USO where the kernel has it) when it can be: a read then returns a GSO super-packet of up to
//! 64 KiB behind a 10-byte header, and a write takes one. Falls back to plain one-packet IO.
//! Closing the last file descriptor removes the interface (it is never made persistent).

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd};
use std::os::unix::fs::OpenOptionsExt;
use std::time::Duration;

/// `struct ifreq` as TUNSETIFF reads it: the name and the flags (a C `short`), padded to the
/// kernel's 40-byte union.
#[repr(C)]
struct IfReq {
    name: [libc::c_char; libc::IFNAMSIZ],
    flags: libc::c_short,
    _pad: [u8; 22],
}

/// `TUNSETOFFLOAD` flags (linux/if_tun.h).
const TUN_F_CSUM: libc::c_uint = 0x01;
const TUN_F_TSO4: libc::c_uint = 0x02;
const TUN_F_TSO6: libc::c_uint = 0x04;
const TUN_F_USO4: libc::c_uint = 0x20;
const TUN_F_USO6: libc::c_uint = 0x40;

/// What the device does beyond one plain packet per read/write.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct TunOffloads {
    /// Every read and write carries a virtio-net header.
    pub vnet_hdr: bool,
    /// Reads may return TCP super-packets (and writes may carry them).
    pub tso: bool,
    /// Reads may return UDP super-packets (and writes may carry them).
    pub uso: bool,
}

/// An open TUN interface.
#[derive(Debug)]
pub(crate) struct Tun {
    file: File,
    offloads: TunOffloads,
}

impl Tun {
    /// Creates the TUN interface, with offloads (virtio-net header, TSO, USO) only if
    /// `offload` is set and the kernel supports them.
    pub(crate) fn open_with(name: &str, offload: bool) -> io::Result<Self> {
        Self::open_queue(name, offload, 0)
    }

    /// Creates the interface with `queues` queues (`IFF_MULTI_QUEUE` when more than one): one
    /// file descriptor each, all with the same offloads. The kernel keeps a flow on one queue.
    pub(crate) fn open_queues(name: &str, offload: bool, queues: usize) -> io::Result<Vec<Self>> {
        if queues <= 1 {
            return Ok(vec![Self::open_with(name, offload)?]);
        }
        let first = Self::open_queue(name, offload, libc::IFF_MULTI_QUEUE)?;
        let extra = libc::IFF_MULTI_QUEUE
            | if first.offloads.vnet_hdr {
                libc::IFF_VNET_HDR
            } else {
                0
            };
        let mut all = vec![first];
        for _ in 1..queues {
            let q = Self::open_flags(name, extra)?;
            if all[0].offloads.tso {
                let same = q.enable_offloads();
                if same != Some(all[0].offloads) {
                    return Err(io::Error::other(
                        "a TUN queue refused the first queue's offloads",
                    ));
                }
            }
            all.push(Self {
                offloads: all[0].offloads,
                ..q
            });
        }
        Ok(all)
    }

    fn open_queue(name: &str, offload: bool, multi: libc::c_int) -> io::Result<Self> {
        // Without TSO the offload-capable device is dropped (the interface goes away) and a
        // plain one made.
        if offload
            && let Ok(tun) = Self::open_flags(name, libc::IFF_VNET_HDR | multi)
            && let Some(offloads) = tun.enable_offloads()
        {
            return Ok(Self { offloads, ..tun });
        }
        Self::open_flags(name, multi)
    }

    /// TSO (required) and USO (optional, Linux 6.2+); `None` if TSO is refused.
    fn enable_offloads(&self) -> Option<TunOffloads> {
        let tso = TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6;
        if self.set_offload(tso | TUN_F_USO4 | TUN_F_USO6).is_ok() {
            return Some(TunOffloads {
                vnet_hdr: true,
                tso: true,
                uso: true,
            });
        }
        self.set_offload(tso).ok().map(|()| TunOffloads {
            vnet_hdr: true,
            tso: true,
            uso: false,
        })
    }

    fn set_offload(&self, flags: libc::c_uint) -> io::Result<()> {
        // SAFETY: TUNSETOFFLOAD takes its argument by value (an unsigned long of flags); the fd
        // is open for the lifetime of `self`.
        let rc = unsafe {
            libc::ioctl(
                self.file.as_raw_fd(),
                libc::TUNSETOFFLOAD,
                libc::c_ulong::from(flags),
            )
        };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// What this device does beyond plain packets.
    pub(crate) fn offloads(&self) -> TunOffloads {
        self.offloads
    }

    fn open_flags(name: &str, extra: libc::c_int) -> io::Result<Self> {
        if name.is_empty() || name.len() >= libc::IFNAMSIZ || name.contains('\0') {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "bad interface name",
            ));
        }
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_CLOEXEC | libc::O_NONBLOCK)
            .open("/dev/net/tun")?;
        let mut req = IfReq {
            name: [0; libc::IFNAMSIZ],
            flags: (libc::IFF_TUN | libc::IFF_NO_PI | extra) as libc::c_short,
            _pad: [0; 22],
        };
        for (dst, src) in req.name.iter_mut().zip(name.bytes()) {
            *dst = src as libc::c_char;
        }
        // SAFETY: the fd is open for the lifetime of `file`; TUNSETIFF reads (and writes back)
        // one `struct ifreq`, and `req` is a properly sized, NUL-terminated, live `IfReq`.
        let rc = unsafe { libc::ioctl(file.as_raw_fd(), libc::TUNSETIFF, &mut req as *mut IfReq) };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(Self {
            file,
            offloads: TunOffloads {
                vnet_hdr: extra & libc::IFF_VNET_HDR != 0,
                ..TunOffloads::default()
            },
        })
    }

    /// Waits up to `timeout` for a packet: `Ok(None)` when none came.
    pub(crate) fn read_timeout(
        &self,
        buf: &mut [u8],
        timeout: Duration,
    ) -> io::Result<Option<usize>> {
        if !super::poll::wait_readable(self.file.as_fd(), timeout)? {
            return Ok(None);
        }
        self.try_read(buf)
    }

    /// Reads a packet if one is queued, without waiting.
    pub(crate) fn try_read(&self, buf: &mut [u8]) -> io::Result<Option<usize>> {
        match (&self.file).read(buf) {
            Ok(n) => Ok(Some(n)),
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
                ) =>
            {
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    /// Writes one IP packet (behind a virtio-net header when [`TunOffloads::vnet_hdr`]) into
    /// the kernel.
    pub(crate) fn write(&self, packet: &[u8]) -> io::Result<usize> {
        (&self.file).write(packet)
    }
}
