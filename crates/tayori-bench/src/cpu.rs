//! Where the CPU went and how much memory the process held, read from `/proc` (Linux only; the
//! figures are `None` elsewhere).
//!
//! Times in `/proc/*/stat` and `/proc/stat` are in USER_HZ ticks, 100 per second on Linux.

use std::path::PathBuf;
use std::time::Instant;

const TICKS_PER_SECOND: f64 = 100.0;

/// A thread whose CPU time can be read later.
#[derive(Debug, Clone)]
pub struct ThreadCpu(Option<PathBuf>);

impl ThreadCpu {
    /// The calling thread.
    pub fn current() -> Self {
        // `/proc/thread-self` links to `<pid>/task/<tid>`.
        let path = std::fs::read_link("/proc/thread-self")
            .ok()
            .map(|link| PathBuf::from("/proc").join(link).join("stat"));
        Self(path)
    }

    /// CPU seconds (user + system) the thread has used.
    pub fn seconds(&self) -> Option<f64> {
        let ticks = stat_ticks(&std::fs::read_to_string(self.0.as_ref()?).ok()?)?;
        Some(ticks as f64 / TICKS_PER_SECOND)
    }
}

/// CPU seconds (user + system) another process has used (`/proc/<pid>/stat`).
pub fn process_seconds(pid: u32) -> Option<f64> {
    let ticks = stat_ticks(&std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)?;
    Some(ticks as f64 / TICKS_PER_SECOND)
}

/// `utime + stime` from a `/proc/.../stat` line.
fn stat_ticks(stat: &str) -> Option<u64> {
    let fields = stat_fields(stat)?;
    Some(fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?)
}

/// The fields after the command name (which may hold spaces): `state` is index 0, `ppid` 1,
/// `utime` 11, `stime` 12.
fn stat_fields(stat: &str) -> Option<Vec<&str>> {
    let (_, rest) = stat.rsplit_once(')')?;
    Some(rest.split_whitespace().collect())
}

/// CPU counters at one moment.
#[derive(Debug, Clone)]
pub struct CpuSample {
    at: Instant,
    process: Option<u64>,
    standin: Option<f64>,
    postgres: Option<u64>,
    /// (busy, total) ticks of all CPUs.
    system: Option<(u64, u64)>,
}

/// CPU used between two samples, in cores (1.0 = one core busy the whole time).
#[derive(Debug, Clone, Copy, Default)]
pub struct CpuUse {
    /// This process: the worker, the stand-in and the bench's own bookkeeping.
    pub process: Option<f64>,
    /// The stand-in's thread alone.
    pub standin: Option<f64>,
    /// The PostgreSQL cluster's processes.
    pub postgres: Option<f64>,
    /// Every CPU of the machine, whoever used it.
    pub system: Option<f64>,
    /// Cores on the machine.
    pub cores: usize,
    /// The wall time between the two samples, seconds.
    pub wall: f64,
}

impl CpuUse {
    /// What else ran on the machine meanwhile (other processes: builds, tests).
    pub fn others(&self) -> Option<f64> {
        Some((self.system? - self.process? - self.postgres?).max(0.0))
    }

    /// CPU time per item (event, message) over the phase, in µs: the process's (of which the
    /// stand-in's) and PostgreSQL's.
    pub fn per_item(&self, items: usize) -> String {
        let us = |cores: Option<f64>| {
            cores.map_or("n/a".to_owned(), |c| {
                format!("{:.0} µs", c * self.wall / items as f64 * 1e6)
            })
        };
        format!(
            "CPU per item: bench process {} (stand-in {}), PostgreSQL {}",
            us(self.process),
            us(self.standin),
            us(self.postgres)
        )
    }

    /// One line for the report.
    pub fn line(&self) -> String {
        let show = |value: Option<f64>| value.map_or("n/a".to_owned(), |v| format!("{v:.2}"));
        format!(
            "CPU in cores (of {}): bench process {} (stand-in thread {}), PostgreSQL {}, \
             others {}, machine total {}",
            self.cores,
            show(self.process),
            show(self.standin),
            show(self.postgres),
            show(self.others()),
            show(self.system),
        )
    }
}

/// Reads the counters of this process, the stand-in thread, the PostgreSQL cluster whose
/// postmaster is `postmaster` and the whole machine.
pub fn sample(standin: &ThreadCpu, postmaster: Option<u32>) -> CpuSample {
    CpuSample {
        at: Instant::now(),
        process: std::fs::read_to_string("/proc/self/stat").ok().and_then(|s| stat_ticks(&s)),
        standin: standin.seconds(),
        postgres: postmaster.and_then(cluster_ticks),
        system: system_ticks(),
    }
}

/// The CPU used from `before` to `after`.
pub fn used(before: &CpuSample, after: &CpuSample) -> CpuUse {
    let wall = after.at.duration_since(before.at).as_secs_f64().max(1e-9);
    let ticks = |a: Option<u64>, b: Option<u64>| {
        Some(b?.saturating_sub(a?) as f64 / TICKS_PER_SECOND / wall)
    };
    let system = match (before.system, after.system) {
        (Some((busy0, total0)), Some((busy1, total1))) if total1 > total0 => {
            let cores = cores() as f64;
            Some((busy1 - busy0) as f64 / (total1 - total0) as f64 * cores)
        }
        _ => None,
    };
    CpuUse {
        process: ticks(before.process, after.process),
        standin: match (before.standin, after.standin) {
            (Some(a), Some(b)) => Some((b - a) / wall),
            _ => None,
        },
        postgres: ticks(before.postgres, after.postgres),
        system,
        cores: cores(),
        wall,
    }
}

/// Cores available to this process.
pub fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, usize::from)
}

/// (busy, total) ticks over all CPUs, from the first line of `/proc/stat`.
fn system_ticks() -> Option<(u64, u64)> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let line = stat.lines().next()?.strip_prefix("cpu ")?;
    let values: Vec<u64> = line.split_whitespace().filter_map(|v| v.parse().ok()).collect();
    // user nice system idle iowait irq softirq steal (guest time is already in user).
    let total: u64 = values.iter().take(8).sum();
    let idle = values.get(3)? + values.get(4)?;
    Some((total - idle, total))
}

/// CPU ticks of the postmaster and its children (backends, WAL writer, checkpointer, ...).
fn cluster_ticks(postmaster: u32) -> Option<u64> {
    let mut total = 0;
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let name = entry.file_name();
        let Some(pid) = name.to_str().and_then(|n| n.parse::<u32>().ok()) else { continue };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else { continue };
        let Some(fields) = stat_fields(&stat) else { continue };
        let ppid = fields.get(1).and_then(|p| p.parse::<u32>().ok());
        if pid == postmaster || ppid == Some(postmaster) {
            total += stat_ticks(&stat).unwrap_or(0);
        }
    }
    Some(total)
}

/// The postmaster's pid, from `postmaster.pid` in the cluster's data directory (readable when
/// the bench runs as root or as the cluster's owner, as `scripts/bench` does).
pub fn postmaster_pid(data_directory: &str) -> Option<u32> {
    let text =
        std::fs::read_to_string(PathBuf::from(data_directory).join("postmaster.pid")).ok()?;
    text.lines().next()?.trim().parse().ok()
}

/// `VmHWM` and `VmRSS` of this process, in MiB.
pub fn memory() -> (Option<f64>, Option<f64>) {
    let Ok(status) = std::fs::read_to_string("/proc/self/status") else { return (None, None) };
    let field = |name: &str| {
        status
            .lines()
            .find_map(|line| line.strip_prefix(name))
            .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
            .map(|kib| kib / 1024.0)
    };
    (field("VmHWM:"), field("VmRSS:"))
}

/// Resets `VmHWM` to the current RSS (`/proc/self/clear_refs`, Linux 4.0+), so the next read
/// shows the peak from now on. Returns whether it worked.
pub fn reset_peak_memory() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

/// Machine facts for the report: CPU model, cores, memory, kernel, load.
pub fn machine() -> Vec<(String, String)> {
    let read = |path: &str| std::fs::read_to_string(path).unwrap_or_default();
    let cpuinfo = read("/proc/cpuinfo");
    let model = cpuinfo
        .lines()
        .find_map(|l| {
            l.strip_prefix("model name")
                .and_then(|r| r.split_once(':'))
                .map(|(_, m)| m.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown".into());
    let meminfo = read("/proc/meminfo");
    let memory = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or("unknown".to_owned(), |kib| format!("{:.1} GiB", kib / 1024.0 / 1024.0));
    vec![
        ("cpu".into(), format!("{} × {model}", cores())),
        ("memory".into(), memory),
        ("kernel".into(), read("/proc/sys/kernel/osrelease").trim().to_owned()),
        ("load average at start".into(), load_average()),
    ]
}

/// `/proc/loadavg`'s first three figures.
pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}
