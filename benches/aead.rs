//! AEAD throughput for `benches/aead.sh` (issue 3): every registered AEAD through the registry's
//! [`AeadKey`] trait, seal and open, at TLS-record-like message sizes with 13 bytes of AAD.
//!
//! Implementations measured:
//! - the built-ins (`pqgate_agility::builtin::aeads()`: aws-lc-rs);
//! - SM4-GCM compiled in (`plugin::builtin_sm4::Sm4Gcm`, cargo feature `plugin-sm4`);
//! - SM4-GCM from the run-time plugin (`plugin::loader::load`), the same cipher code behind the
//!   C ABI: the compiled-in/plugin ratio is the cost of the ABI boundary;
//! - for reference, the plugin's C ABI functions called directly (no loader wrapper: the output
//!   buffer is allocated once at its final size, only the return code and length are checked).
//!
//! Method: warm-up and calibration per cell, then a fixed number of iterations per cell (the
//! same for every SM4-GCM implementation, so compiled-in and plugin do identical work), `--rounds`
//! rounds; inside a round every cell runs each implementation back to back, in forward order in
//! even rounds and reverse order in odd ones (A/B, B/A), so a pair is always measured adjacent.
//! A batch during which this thread got less than 95% of the wall time on CPU (preempted by
//! other load or hypervisor steal) is repeated, at most twice. Prints Markdown to stdout.

use std::ffi::{CStr, CString, c_char, c_int, c_void};
use std::hint::black_box;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use clap::Parser;
use pqgate_agility::builtin;
use pqgate_agility::plugin::builtin_sm4::Sm4Gcm;
use pqgate_agility::plugin::{AeadAlgorithm, AeadKey, loader};

#[derive(Parser)]
#[command(about = "pqgate AEAD throughput: built-ins, compiled-in and run-time plugin")]
struct Cli {
    /// The run-time SM4-GCM plugin (`cargo build --release -p pqgate-plugin-sm4`).
    #[arg(long, default_value = "target/release/libpqgate_plugin_sm4.so")]
    plugin: PathBuf,
    /// Measurement rounds.
    #[arg(long, default_value_t = 11)]
    rounds: usize,
    /// Target length of one timed batch in milliseconds (sets the fixed iteration count).
    #[arg(long, default_value_t = 80)]
    batch_ms: u64,
    /// Message (plaintext) sizes in bytes.
    #[arg(long, value_delimiter = ',', default_values_t = [1400, 16384])]
    sizes: Vec<usize>,
    /// Associated data length (13: a TLS 1.2-style record header; TLS 1.3 uses 5).
    #[arg(long, default_value_t = 13)]
    aad: usize,
    /// Skip the direct C ABI reference.
    #[arg(long)]
    no_raw: bool,
    /// Skip the 0-byte cells that show the fixed cost of one call.
    #[arg(long)]
    no_call_cost: bool,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Dir {
    Seal,
    Open,
}

const DIRS: [Dir; 2] = [Dir::Seal, Dir::Open];

impl Dir {
    fn name(self) -> &'static str {
        match self {
            Dir::Seal => "seal",
            Dir::Open => "open",
        }
    }
}

/// What a measured implementation is.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Builtin,
    CompiledIn,
    Plugin,
    RawAbi,
}

enum Imp {
    Trait(Box<dyn AeadKey>),
    Raw(RawAbi),
}

struct Variant {
    aead: String,
    how: &'static str,
    kind: Kind,
    nonce_len: usize,
    tag_len: usize,
    imp: Imp,
}

impl Variant {
    fn from_alg(alg: &dyn AeadAlgorithm, how: &'static str, kind: Kind) -> anyhow::Result<Self> {
        let key = alg
            .new_key(&key_bytes(alg.key_len()))
            .with_context(|| format!("{} ({how}): new_key", alg.name()))?;
        Ok(Self {
            aead: alg.name().to_owned(),
            how,
            kind,
            nonce_len: alg.nonce_len(),
            tag_len: alg.tag_len(),
            imp: Imp::Trait(key),
        })
    }

    fn label(&self) -> String {
        format!("{} ({})", self.aead, self.how)
    }

    /// One seal or open into `out` (cleared first for the trait; sized once for the raw ABI).
    fn once(&self, op: Op, out: &mut Vec<u8>) -> anyhow::Result<()> {
        match &self.imp {
            Imp::Trait(key) => {
                out.clear();
                match op.dir {
                    Dir::Seal => key.seal(op.nonce, op.aad, op.input, out)?,
                    Dir::Open => key.open(op.nonce, op.aad, op.input, out)?,
                }
            }
            Imp::Raw(raw) => raw.crypt(op, out)?,
        }
        Ok(())
    }

    /// The output length for `input` in direction `dir`.
    fn out_len(&self, dir: Dir, input: usize) -> usize {
        match dir {
            Dir::Seal => input + self.tag_len,
            Dir::Open => input - self.tag_len,
        }
    }

    /// A buffer ready for [`Variant::once`]: reserved (trait) or at its final length (raw).
    fn out_buf(&self, dir: Dir, input: usize) -> Vec<u8> {
        let n = self.out_len(dir, input);
        match self.imp {
            Imp::Trait(_) => Vec::with_capacity(n),
            Imp::Raw(_) => vec![0; n],
        }
    }

    /// Runs `iters` operations; returns (wall time, this thread's CPU time).
    fn batch(&self, op: Op, out: &mut Vec<u8>, iters: u64) -> anyhow::Result<(Duration, Duration)> {
        let cpu0 = thread_cpu();
        let t0 = Instant::now();
        for _ in 0..iters {
            let op = Op {
                dir: op.dir,
                nonce: black_box(op.nonce),
                aad: black_box(op.aad),
                input: black_box(op.input),
            };
            self.once(op, out)?;
            black_box(&mut *out);
        }
        let wall = t0.elapsed();
        Ok((wall, thread_cpu().saturating_sub(cpu0)))
    }
}

/// One operation's inputs: its direction, nonce, AAD and the plaintext (seal) or ciphertext
/// (open).
#[derive(Clone, Copy)]
struct Op<'a> {
    dir: Dir,
    nonce: &'a [u8],
    aad: &'a [u8],
    input: &'a [u8],
}

fn key_bytes(len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(29).wrapping_add(7))
        .collect()
}

/// Deterministic filler (xorshift64).
fn message(len: usize) -> Vec<u8> {
    support::Xorshift64(0x9E37_79B9_7F4A_7C15)
        .take(len)
        .collect()
}

fn thread_cpu() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; the clock id is a Linux constant.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    if rc != 0 {
        return Duration::ZERO;
    }
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// Busy and total jiffies of the whole machine (/proc/stat), and this process's CPU time.
fn machine_snapshot() -> (u64, u64, Duration) {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let f: Vec<u64> = stat
        .lines()
        .next()
        .unwrap_or("")
        .split_whitespace()
        .skip(1)
        .filter_map(|v| v.parse().ok())
        .collect();
    let get = |i: usize| f.get(i).copied().unwrap_or(0);
    // user nice system idle iowait irq softirq steal
    let busy = get(0) + get(1) + get(2) + get(5) + get(6) + get(7);
    let total = busy + get(3) + get(4);
    // SAFETY: an all-zero rusage is a valid value; getrusage fills it.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `ru` is a valid, writable rusage.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    (busy, total, tv(ru.ru_utime) + tv(ru.ru_stime))
}

// ------------------------------------------------------------------ the C ABI, called directly

type KeyNewFn = unsafe extern "C" fn(*const u8, usize) -> *mut c_void;
type KeyFreeFn = unsafe extern "C" fn(*mut c_void);
type CryptFn = unsafe extern "C" fn(
    *const c_void,
    *const u8,
    usize,
    *const u8,
    usize,
    *const u8,
    usize,
    *mut u8,
    usize,
    *mut usize,
) -> c_int;
type EntryFn = unsafe extern "C" fn() -> *const PluginV1;

/// `pqgate_aead_v1` of `gateway/agility/include/pqgate_plugin.h`.
#[repr(C)]
struct AeadV1 {
    name: *const c_char,
    key_len: u32,
    nonce_len: u32,
    tag_len: u32,
    key_new: Option<KeyNewFn>,
    key_free: Option<KeyFreeFn>,
    seal: Option<CryptFn>,
    open: Option<CryptFn>,
    block_len: u32,
    encrypt_block: *const c_void,
    kats: *const c_void,
    kat_count: usize,
}

/// The head of `pqgate_plugin_v1` (the fields after `aead_count` are not read).
#[repr(C)]
struct PluginV1 {
    abi_version: u32,
    name: *const c_char,
    version: *const c_char,
    aeads: *const AeadV1,
    aead_count: usize,
}

/// A key object of the plugin, used through its seal/open function pointers.
struct RawAbi {
    key: *mut c_void,
    seal: CryptFn,
    open: CryptFn,
    key_free: KeyFreeFn,
}

impl Drop for RawAbi {
    fn drop(&mut self) {
        // SAFETY: `key` came from the plugin's key_new and is freed once; the library is never
        // unloaded (no dlclose).
        unsafe { (self.key_free)(self.key) }
    }
}

impl RawAbi {
    /// Opens the plugin (again: dlopen reference-counts it), finds `name` and expands the
    /// benchmark key. The library stays mapped for the life of the process.
    fn open_plugin(path: &std::path::Path, name: &str) -> anyhow::Result<(Self, usize, usize)> {
        let cpath = CString::new(path.as_os_str().as_encoded_bytes())?;
        // SAFETY: loading the plugin the loader has already loaded and checked.
        let handle = unsafe { libc::dlopen(cpath.as_ptr(), libc::RTLD_NOW | libc::RTLD_LOCAL) };
        ensure!(!handle.is_null(), "dlopen {} failed", path.display());
        // SAFETY: `handle` is live; the symbol name is NUL-terminated.
        let sym = unsafe { libc::dlsym(handle, c"pqgate_plugin_v1_entry".as_ptr()) };
        ensure!(!sym.is_null(), "no pqgate_plugin_v1_entry");
        // SAFETY: the entry symbol's type is fixed by the ABI header.
        let entry = unsafe { std::mem::transmute::<*mut c_void, EntryFn>(sym) };
        // SAFETY: the entry function takes nothing and returns a static descriptor.
        let d = unsafe { entry() };
        ensure!(!d.is_null(), "entry returned NULL");
        // SAFETY: non-NULL static descriptor; the loader has validated this same plugin.
        let d = unsafe { &*d };
        ensure!(d.abi_version == 1, "ABI version {}", d.abi_version);
        ensure!(!d.aeads.is_null() && d.aead_count <= 16, "bad AEAD array");
        // SAFETY: non-NULL, bounded count of static entries.
        let aeads = unsafe { std::slice::from_raw_parts(d.aeads, d.aead_count) };
        for a in aeads {
            // SAFETY: the loader checked that names are NUL-terminated within 64 bytes.
            if a.name.is_null() || unsafe { CStr::from_ptr(a.name) }.to_bytes() != name.as_bytes() {
                continue;
            }
            let (Some(key_new), Some(key_free), Some(seal), Some(open)) =
                (a.key_new, a.key_free, a.seal, a.open)
            else {
                bail!("{name}: NULL function pointer");
            };
            let kb = key_bytes(a.key_len as usize);
            // SAFETY: `kb` holds key_len readable bytes.
            let key = unsafe { key_new(kb.as_ptr(), kb.len()) };
            ensure!(!key.is_null(), "{name}: key_new returned NULL");
            let raw = RawAbi {
                key,
                seal,
                open,
                key_free,
            };
            return Ok((raw, a.nonce_len as usize, a.tag_len as usize));
        }
        bail!("{} declares no {name}", path.display())
    }

    /// Calls seal/open into `out`, which already has exactly the output length.
    fn crypt(&self, op: Op, out: &mut [u8]) -> anyhow::Result<()> {
        let Op {
            nonce, aad, input, ..
        } = op;
        let f = match op.dir {
            Dir::Seal => self.seal,
            Dir::Open => self.open,
        };
        let mut written = 0usize;
        // SAFETY: every pointer/length pair is a live buffer of that length; `out` is writable
        // for out.len() bytes and disjoint from the inputs.
        let rc = unsafe {
            f(
                self.key,
                nonce.as_ptr(),
                nonce.len(),
                aad.as_ptr(),
                aad.len(),
                input.as_ptr(),
                input.len(),
                out.as_mut_ptr(),
                out.len(),
                &mut written,
            )
        };
        ensure!(
            rc == 0 && written == out.len(),
            "C ABI {}: rc {rc}",
            op.dir.name()
        );
        Ok(())
    }
}

// ------------------------------------------------------------------ statistics

fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let n = s.len();
    if n == 0 {
        return f64::NAN;
    }
    if n % 2 == 1 {
        s[n / 2]
    } else {
        (s[n / 2 - 1] + s[n / 2]) / 2.0
    }
}

fn min_max(v: &[f64]) -> (f64, f64) {
    v.iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &x| {
            (a.min(x), b.max(x))
        })
}

/// MB/s (10^6 bytes per second) for `size` bytes in `ns` nanoseconds.
fn mbps(size: usize, ns: f64) -> f64 {
    size as f64 * 1e3 / ns
}

// ------------------------------------------------------------------ main

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    ensure!(cli.rounds >= 1, "--rounds must be >= 1");
    ensure!(
        !cli.sizes.is_empty() && !cli.sizes.contains(&0),
        "--sizes must be non-empty and > 0"
    );
    // Measured sizes: the requested ones, then 0 (fixed cost per call) unless --no-call-cost.
    let mut sizes = cli.sizes.clone();
    if !cli.no_call_cost {
        sizes.push(0);
    }

    let mut variants = Vec::new();
    let sm4: Arc<dyn AeadAlgorithm> = Arc::new(Sm4Gcm::new());
    variants.push(Variant::from_alg(
        sm4.as_ref(),
        "compiled in",
        Kind::CompiledIn,
    )?);
    let decl =
        loader::load(&cli.plugin).with_context(|| format!("loading {}", cli.plugin.display()))?;
    let plugin_alg = decl
        .aeads
        .iter()
        .find(|a| a.name() == sm4.name())
        .with_context(|| format!("{} declares no {}", cli.plugin.display(), sm4.name()))?;
    pqgate_agility::plugin::check_aead(plugin_alg.as_ref())
        .context("the plugin's known-answer vectors")?;
    variants.push(Variant::from_alg(
        plugin_alg.as_ref(),
        "run-time plugin",
        Kind::Plugin,
    )?);
    if !cli.no_raw {
        let (raw, nonce_len, tag_len) = RawAbi::open_plugin(&cli.plugin, sm4.name())?;
        variants.push(Variant {
            aead: sm4.name().to_owned(),
            how: "plugin C ABI called directly, reference",
            kind: Kind::RawAbi,
            nonce_len,
            tag_len,
            imp: Imp::Raw(raw),
        });
    }
    for alg in builtin::aeads() {
        variants.push(Variant::from_alg(
            alg.as_ref(),
            "built-in, aws-lc-rs",
            Kind::Builtin,
        )?);
    }

    let aad = message(cli.aad + 7)[7..].to_vec();
    let max = sizes.iter().copied().max().unwrap_or(0);
    let msg = message(max);

    // Correctness once per implementation and size: open(seal(x)) == x, and every SM4-GCM
    // implementation produces the same ciphertext.
    println!("## Correctness\n");
    let mut sealed: Vec<Vec<Vec<u8>>> = Vec::new(); // [variant][size]
    for v in &variants {
        let nonce = vec![0x5a; v.nonce_len];
        let mut per_size = Vec::new();
        for &size in &sizes {
            let pt = &msg[..size];
            let mut ct = v.out_buf(Dir::Seal, size);
            v.once(
                Op {
                    dir: Dir::Seal,
                    nonce: &nonce,
                    aad: &aad,
                    input: pt,
                },
                &mut ct,
            )
            .with_context(|| format!("{} seal {size}", v.label()))?;
            ensure!(ct.len() == size + v.tag_len, "{}: sealed length", v.label());
            let mut back = v.out_buf(Dir::Open, ct.len());
            v.once(
                Op {
                    dir: Dir::Open,
                    nonce: &nonce,
                    aad: &aad,
                    input: &ct,
                },
                &mut back,
            )
            .with_context(|| format!("{} open {size}", v.label()))?;
            ensure!(
                back == pt,
                "{}: open(seal(x)) != x at {size} bytes",
                v.label()
            );
            let mut forged = ct.clone();
            *forged.last_mut().context("empty")? ^= 1;
            let mut sink = v.out_buf(Dir::Open, forged.len());
            ensure!(
                v.once(
                    Op {
                        dir: Dir::Open,
                        nonce: &nonce,
                        aad: &aad,
                        input: &forged
                    },
                    &mut sink
                )
                .is_err(),
                "{}: accepted a forged tag",
                v.label()
            );
            per_size.push(ct);
        }
        sealed.push(per_size);
    }
    let sm4_idx: Vec<usize> = (0..variants.len())
        .filter(|&i| variants[i].kind != Kind::Builtin)
        .collect();
    for &i in &sm4_idx[1..] {
        ensure!(
            sealed[i] == sealed[sm4_idx[0]],
            "{} and {} disagree",
            variants[i].label(),
            variants[sm4_idx[0]].label()
        );
    }
    println!(
        "open(seal(x)) == x and a flipped tag bit is refused, for every implementation at {} bytes; \
         the SM4-GCM implementations produce identical ciphertexts.\n",
        sizes
            .iter()
            .map(|s| s.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    );

    // Warm-up and calibration: iterations per cell so that one batch takes about --batch-ms.
    // SM4-GCM implementations share the compiled-in count.
    let batch_ns = cli.batch_ms as f64 * 1e6;
    let ncell = sizes.len() * DIRS.len();
    let cell = |s: usize, d: usize| s * DIRS.len() + d;
    let mut iters = vec![vec![0u64; ncell]; variants.len()];
    let mut outs: Vec<Vec<Vec<u8>>> = Vec::new(); // [variant][cell]
    for (vi, v) in variants.iter().enumerate() {
        let nonce = vec![0x5a; v.nonce_len];
        let mut per_cell = Vec::new();
        for (si, &size) in sizes.iter().enumerate() {
            for (di, &dir) in DIRS.iter().enumerate() {
                let input: &[u8] = match dir {
                    Dir::Seal => &msg[..size],
                    Dir::Open => &sealed[vi][si],
                };
                let mut out = v.out_buf(dir, input.len());
                let op = Op {
                    dir,
                    nonce: &nonce,
                    aad: &aad,
                    input,
                };
                let mut n = 1u64;
                let est = loop {
                    let (wall, _) = v.batch(op, &mut out, n)?;
                    if wall.as_secs_f64() * 1e9 >= batch_ns / 4.0 {
                        break wall.as_secs_f64() * 1e9 / n as f64;
                    }
                    n *= 2;
                };
                // At least one more full batch of warm-up.
                let full = ((batch_ns / est) as u64).max(1);
                v.batch(op, &mut out, full)?;
                iters[vi][cell(si, di)] = full;
                per_cell.push(out);
            }
        }
        outs.push(per_cell);
    }
    let first_sm4 = sm4_idx[0];
    for &i in &sm4_idx[1..] {
        iters[i] = iters[first_sm4].clone();
    }

    // Rounds.
    let (busy0, total0, self0) = machine_snapshot();
    let run0 = Instant::now();
    let mut ns = vec![vec![Vec::new(); ncell]; variants.len()]; // [variant][cell][round]
    let mut repeated = 0usize;
    let mut still_disturbed = 0usize;
    let order: Vec<usize> = (0..variants.len()).collect();
    for round in 0..cli.rounds {
        for (si, &size) in sizes.iter().enumerate() {
            for (di, &dir) in DIRS.iter().enumerate() {
                let c = cell(si, di);
                let seq: Vec<usize> = if round % 2 == 0 {
                    order.clone()
                } else {
                    order.iter().rev().copied().collect()
                };
                for vi in seq {
                    let v = &variants[vi];
                    let nonce = vec![0x5a; v.nonce_len];
                    let input: &[u8] = match dir {
                        Dir::Seal => &msg[..size],
                        Dir::Open => &sealed[vi][si],
                    };
                    let op = Op {
                        dir,
                        nonce: &nonce,
                        aad: &aad,
                        input,
                    };
                    let n = iters[vi][c];
                    let mut attempt = 0;
                    let (wall, _) = loop {
                        let (wall, cpu) = v.batch(op, &mut outs[vi][c], n)?;
                        attempt += 1;
                        let ok = cpu.as_secs_f64() >= 0.95 * wall.as_secs_f64();
                        if ok || attempt == 3 {
                            if !ok {
                                still_disturbed += 1;
                            }
                            break (wall, cpu);
                        }
                        repeated += 1;
                    };
                    ns[vi][c].push(wall.as_secs_f64() * 1e9 / n as f64);
                }
            }
        }
    }
    let run_wall = run0.elapsed();
    let (busy1, total1, self1) = machine_snapshot();
    let ncpu = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
    let machine_cores = if total1 > total0 {
        ncpu * (busy1 - busy0) as f64 / (total1 - total0) as f64
    } else {
        0.0
    };
    let own_cores = (self1 - self0).as_secs_f64() / run_wall.as_secs_f64();
    let others = (machine_cores - own_cores).max(0.0);

    // Throughput table.
    println!("## Throughput\n");
    println!(
        "Median of {} rounds (min-max over rounds in brackets). MB/s = 10^6 bytes of message \
         (plaintext) per second, for seal and open alike; ns/op is one seal or open of one \
         message with {} bytes of AAD, output appended to a reused, cleared `Vec`.\n",
        cli.rounds, cli.aad
    );
    println!(
        "| AEAD | implementation | size (bytes) | seal MB/s | seal ns/op | open MB/s | open ns/op | iterations per batch (seal/open) |"
    );
    println!("|---|---|---:|---:|---:|---:|---:|---:|");
    let mut row_order: Vec<usize> = (0..variants.len())
        .filter(|&i| variants[i].kind == Kind::Builtin)
        .collect();
    row_order.extend(&sm4_idx);
    for (si, &size) in sizes.iter().enumerate() {
        if size == 0 {
            continue;
        }
        for &vi in &row_order {
            let v = &variants[vi];
            let mut cols = Vec::new();
            for di in 0..DIRS.len() {
                let r = &ns[vi][cell(si, di)];
                let (lo, hi) = min_max(r);
                let m = median(r);
                cols.push(format!(
                    "{:.1} [{:.1}-{:.1}]",
                    mbps(size, m),
                    mbps(size, hi),
                    mbps(size, lo)
                ));
                cols.push(format!("{m:.0}"));
            }
            println!(
                "| {} | {} | {} | {} | {} | {} | {} | {}/{} |",
                v.aead,
                v.how,
                size,
                cols[0],
                cols[1],
                cols[2],
                cols[3],
                iters[vi][cell(si, 0)],
                iters[vi][cell(si, 1)]
            );
        }
    }

    // Ratio table.
    let find = |k: Kind| variants.iter().position(|v| v.kind == k);
    let compiled = find(Kind::CompiledIn).context("no compiled-in variant")?;
    let plugin = find(Kind::Plugin).context("no plugin variant")?;
    let raw = find(Kind::RawAbi);
    println!("\n## Plugin path vs compiled in (SM4-GCM)\n");
    println!(
        "Throughput ratio = compiled-in ns/op / other ns/op (> 1: the other is faster). \"Paired\" \
         is the median (min-max) of the per-round ratios, each from two batches measured back to \
         back; \"of medians\" divides the medians of the table above. Goal (issue 3): run-time \
         plugin >= 0.95x compiled in at 1,400 bytes.\n"
    );
    println!("| size (bytes) | direction | compared | paired ratio | of medians | goal | result |");
    println!("|---:|---|---|---:|---:|---|---|");
    let mut others_cmp = vec![(plugin, "run-time plugin / compiled in")];
    if let Some(r) = raw {
        others_cmp.push((r, "C ABI direct (reference) / compiled in"));
    }
    for (si, &size) in sizes.iter().enumerate() {
        if size == 0 {
            continue;
        }
        for (di, &dir) in DIRS.iter().enumerate() {
            let c = cell(si, di);
            for &(other, what) in &others_cmp {
                let paired: Vec<f64> = ns[compiled][c]
                    .iter()
                    .zip(&ns[other][c])
                    .map(|(a, b)| a / b)
                    .collect();
                let (lo, hi) = min_max(&paired);
                let pm = median(&paired);
                let om = median(&ns[compiled][c]) / median(&ns[other][c]);
                let (goal, result) = if other == plugin && size == 1400 {
                    let met = if pm >= 0.95 { "**met**" } else { "**MISSED**" };
                    (">= 0.95x", met)
                } else {
                    ("-", "-")
                };
                println!(
                    "| {size} | {} | {what} | {pm:.3}x ({lo:.3}-{hi:.3}) | {om:.3}x | {goal} | {result} |",
                    dir.name()
                );
            }
        }
    }

    if let Some(z) = sizes.iter().position(|&s| s == 0) {
        println!(
            "\n## Fixed cost of one call (0-byte message, {} bytes of AAD)\n",
            cli.aad
        );
        println!(
            "What one seal or open costs apart from the message bytes: at 0 bytes SM4-GCM still \
             encrypts one block (the tag mask) and runs GHASH over the AAD and lengths. \
             \"Extra\" is the median of the per-round differences from the compiled-in SM4-GCM \
             (same round, back to back): the cost of the ABI boundary per call, plus code-layout \
             effects of two separately compiled copies of the same cipher code (these alone move \
             a call by some 10-20 ns either way between builds, so a negative extra is possible). \
             \"Share\" is that extra as a fraction of the compiled-in op at each message size.\n"
        );
        let mut head = String::from(
            "| implementation | seal ns/op | open ns/op | extra ns/call seal | extra ns/call open |",
        );
        let mut rule = String::from("|---|---:|---:|---:|---:|");
        for &size in sizes.iter().filter(|&&s| s != 0) {
            head.push_str(&format!(" share at {size} B seal/open |"));
            rule.push_str("---:|");
        }
        println!("{head}\n{rule}");
        for &vi in &row_order {
            let v = &variants[vi];
            let mut line = format!("| {} |", v.label());
            for di in 0..DIRS.len() {
                line.push_str(&format!(" {:.0} |", median(&ns[vi][cell(z, di)])));
            }
            let mut extra = [f64::NAN; 2];
            for (di, e) in extra.iter_mut().enumerate() {
                let c = cell(z, di);
                if v.kind != Kind::Builtin {
                    let d: Vec<f64> = ns[vi][c]
                        .iter()
                        .zip(&ns[compiled][c])
                        .map(|(a, b)| a - b)
                        .collect();
                    *e = median(&d);
                }
                if v.kind == Kind::Builtin || vi == compiled {
                    line.push_str(" - |");
                } else {
                    line.push_str(&format!(" {:+.1} |", *e));
                }
            }
            for (si, &size) in sizes.iter().enumerate() {
                if size == 0 {
                    continue;
                }
                if v.kind == Kind::Builtin || vi == compiled {
                    line.push_str(" - |");
                    continue;
                }
                let share: Vec<String> = (0..DIRS.len())
                    .map(|di| {
                        let base = median(&ns[compiled][cell(si, di)]);
                        format!("{:.2}%", 100.0 * extra[di] / base)
                    })
                    .collect();
                line.push_str(&format!(" {} |", share.join(" / ")));
            }
            println!("{line}");
        }
    }

    println!("\n## Run\n");
    println!(
        "- {} rounds in {:.1} s; {} batches repeated because this thread had < 95% of the wall \
         time on CPU, {} still disturbed after two repeats (kept).",
        cli.rounds,
        run_wall.as_secs_f64(),
        repeated,
        still_disturbed
    );
    println!(
        "- machine busy {machine_cores:.2} cores during the rounds, this benchmark {own_cores:.2}, \
         others {others:.2} (of {ncpu:.0})."
    );

    println!("\n## Per-round ns/op\n");
    println!("| implementation | size | direction | ns/op per round |");
    println!("|---|---:|---|---|");
    for (si, &size) in sizes.iter().enumerate() {
        for (di, &dir) in DIRS.iter().enumerate() {
            for &vi in &row_order {
                let r: Vec<String> = ns[vi][cell(si, di)]
                    .iter()
                    .map(|x| format!("{x:.0}"))
                    .collect();
                println!(
                    "| {} | {size} | {} | {} |",
                    variants[vi].label(),
                    dir.name(),
                    r.join(" ")
                );
            }
        }
    }
    eprintln!(
        "RESULT rounds={} others_cores={others:.2} repeated={repeated} run_s={:.1}",
        cli.rounds,
        run_wall.as_secs_f64()
    );
    Ok(())
}
