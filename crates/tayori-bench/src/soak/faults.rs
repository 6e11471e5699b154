//! The faults of the soak: the SQS adapter's fault proxy (one file, included from its tests'
//! support, not copied) in front of the stand-in, and a schedule that injects one fault every
//! few minutes while events are published, rotating through four kinds.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

#[path = "../../../tayori-sqs/tests/support/fault_proxy.rs"]
mod fault_proxy;

use fault_proxy::Fault;
pub use fault_proxy::FaultProxy;

/// The kinds, in the order they are injected (then again from the first).
pub const ROTATION: [Kind; 4] =
    [Kind::ServerErrors, Kind::Resets, Kind::HungRequest, Kind::IdleDrop];

/// A connection idle this long is dropped during an idle-drop fault: far shorter than the AWS
/// clients' pool idle timeout (30 s, `tayori::worker`), so that pooled connections are hit even
/// under load (which keeps the pollers' connections busy). A connection whose idle timer started
/// during the fault is still dropped when it runs out, up to this long after the fault: a long
/// poll sent then loses its answer and the worker's client times it out (30 s).
const IDLE_LIMIT: Duration = Duration::from_secs(2);

/// How long a hung request's fault is counted: until the worker's client gives the request up,
/// at the latest (a long poll's limit: `queue.wait_time_seconds` 20 + `queue.call_timeout` 10).
/// While both pollers' receives hang, nothing is received.
const HUNG_FOR: Duration = Duration::from_secs(30);

/// One kind of fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Every SQS call answered `500 InternalError` for the fault's duration.
    ServerErrors,
    /// Every SQS call's connection reset (RST) for the fault's duration.
    Resets,
    /// The next SQS request swallowed (or the next few, sent within the same few
    /// milliseconds), its connection left open and silent: a receive, delete or visibility
    /// change, whichever comes first. The client's timeout ends it; the fault's window covers
    /// the longest such timeout, 30 s.
    HungRequest,
    /// Connections idle for 2 s dropped silently for the fault's duration (a NAT gateway's
    /// idle timeout): requests later sent on them go nowhere.
    IdleDrop,
}

impl Kind {
    /// As the report names it.
    pub fn label(self) -> &'static str {
        match self {
            Kind::ServerErrors => "500s",
            Kind::Resets => "resets",
            Kind::HungRequest => "hung request",
            Kind::IdleDrop => "idle drop",
        }
    }
}

/// One injected fault: from and to, since the soak's start.
#[derive(Debug, Clone, Copy)]
pub struct Window {
    /// Which.
    pub kind: Kind,
    /// When it started.
    pub from: Duration,
    /// When it ended (`Duration::MAX` while it lasts).
    pub to: Duration,
}

/// When faults come.
#[derive(Debug, Clone, Copy)]
pub struct Schedule {
    /// One fault this often (zero: none), the first this long after the start.
    pub every: Duration,
    /// How long a 500s, resets or idle-drop fault lasts (a hung request: until one is hung).
    pub lasting: Duration,
    /// No fault may last past this (publishing stops then).
    pub until: Duration,
}

impl Schedule {
    /// The start of the `k`-th fault (from 1), when it fits.
    fn start_of(&self, k: u32) -> Option<Duration> {
        let at = self.every.checked_mul(k)?;
        (!self.every.is_zero() && at + self.lasting.max(HUNG_FOR) <= self.until).then_some(at)
    }
}

/// The faults injected so far.
pub type Log = Arc<Mutex<Vec<Window>>>;

/// Injects the schedule's faults through `proxy`, recording each in `log`; returns when the
/// last one has ended. The proxy forwards everything again between faults and afterwards.
pub async fn inject(proxy: Arc<FaultProxy>, schedule: Schedule, start: Instant, log: Log) {
    let mut k = 1;
    while let Some(at) = schedule.start_of(k) {
        tokio::time::sleep_until((start + at).into()).await;
        let kind = ROTATION[(k as usize - 1) % ROTATION.len()];
        let from = start.elapsed();
        let index = {
            let mut log = log.lock().unwrap_or_else(PoisonError::into_inner);
            log.push(Window { kind, from, to: Duration::MAX });
            log.len() - 1
        };
        match kind {
            Kind::ServerErrors | Kind::Resets => {
                proxy.set(if kind == Kind::Resets { Fault::Reset } else { Fault::ServerError });
                tokio::time::sleep(schedule.lasting).await;
                proxy.set(Fault::None);
            }
            Kind::HungRequest => {
                let hung = || proxy.counts.hung.load(std::sync::atomic::Ordering::Relaxed);
                let before = hung();
                proxy.set(Fault::Hang);
                let started = Instant::now();
                while hung() == before && started.elapsed() < schedule.lasting {
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
                proxy.set(Fault::None);
                tokio::time::sleep_until((started + HUNG_FOR).into()).await;
            }
            Kind::IdleDrop => {
                proxy.set_drop_idle_after(Some(IDLE_LIMIT));
                tokio::time::sleep(schedule.lasting).await;
                proxy.set_drop_idle_after(None);
            }
        }
        let to = start.elapsed();
        if let Some(window) = log.lock().unwrap_or_else(PoisonError::into_inner).get_mut(index) {
            window.to = to;
        }
        k += 1;
    }
}

/// What the proxy did over the whole soak, for the report.
pub fn counts_line(proxy: &FaultProxy) -> String {
    use std::sync::atomic::Ordering::Relaxed;
    let c = &proxy.counts;
    format!(
        "{} client writes forwarded, {} answered 500, {} reset, {} hung, {} sent on connections \
         dropped for idleness",
        c.forwarded.load(Relaxed),
        c.server_errors.load(Relaxed),
        c.resets.load(Relaxed),
        c.hung.load(Relaxed),
        c.on_dropped_connections.load(Relaxed)
    )
}
