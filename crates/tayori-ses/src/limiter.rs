//! The send-rate limiter: one global rate shared fairly among tenants, plus optional per-tenant
//! caps, with a bounded wait.
//!
//! The buckets are governor's (GCRA). Fairness is ours: every waiting email sits in its
//! tenant's queue, and each token of the global rate goes to the next tenant in round-robin
//! order that has an email waiting and is under its own cap. A tenant with a thousand emails
//! queued therefore gets the same share as one with two (max-min fairness), and a tenant at its
//! cap never holds up the others. There is no background task: whichever waiter holds the
//! dispatcher lock hands out the next token, to itself or to someone else, so the limiter
//! costs nothing when idle and needs no shutdown.

use std::collections::{HashMap, VecDeque};
use std::num::NonZeroU32;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use governor::clock::Clock;
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use tayori_domain::TenantId;
use tokio::sync::oneshot;
use tokio::time::{Instant, sleep, sleep_until};

/// The wait for a send slot ran out; the email was not sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RateWaitExceeded {
    /// A guess at when a slot may be free: the emails queued ahead and this one, at the global
    /// rate; between 1 s and 1 h.
    pub retry_after: Duration,
}

/// See the module documentation.
pub(crate) struct FairLimiter {
    global: DefaultDirectRateLimiter,
    global_rate: f64,
    caps: HashMap<TenantId, DefaultDirectRateLimiter>,
    queues: Mutex<Queues>,
    /// Held by the one waiter that hands out the next token.
    dispatcher: tokio::sync::Mutex<()>,
}

#[derive(Default)]
struct Queues {
    next_ticket: u64,
    /// Tenants with at least one email waiting, in the order they are served: front first.
    ring: VecDeque<TenantId>,
    waiting: HashMap<TenantId, VecDeque<Waiter>>,
}

struct Waiter {
    ticket: u64,
    grant: oneshot::Sender<()>,
}

/// What one pass over the tenants did.
enum Pass {
    /// A waiter got the token.
    Granted,
    /// Nobody is waiting any more (the token is lost, which only slows a sender with no work).
    Nobody,
    /// Everyone waiting is at their tenant's cap; the first cap frees up after this long.
    AllCapped(Duration),
}

/// A GCRA quota of `rate` emails per second (fractions allowed) with `burst` back to back.
pub(crate) fn quota(rate: f64, burst: NonZeroU32) -> Quota {
    // The callers check 0 < rate <= 1e6, so the period is at least a microsecond.
    let period = Duration::from_secs_f64(1.0 / rate).max(Duration::from_nanos(1));
    Quota::with_period(period)
        .unwrap_or_else(|| Quota::per_second(NonZeroU32::MIN))
        .allow_burst(burst)
}

impl FairLimiter {
    /// A limiter allowing `global_rate` emails per second (bursts of `burst`) in all, and each
    /// tenant in `caps` at most its rate (no bursts).
    pub(crate) fn new(global_rate: f64, burst: NonZeroU32, caps: &HashMap<TenantId, f64>) -> Self {
        Self {
            global: RateLimiter::direct(quota(global_rate, burst)),
            global_rate,
            caps: caps
                .iter()
                .map(|(tenant, rate)| {
                    (tenant.clone(), RateLimiter::direct(quota(*rate, NonZeroU32::MIN)))
                })
                .collect(),
            queues: Mutex::new(Queues::default()),
            dispatcher: tokio::sync::Mutex::new(()),
        }
    }

    /// Waits, at most `max_wait`, until `tenant` may send one email. Cancel-safe: a waiter
    /// dropped while queued is skipped when its turn comes.
    pub(crate) async fn acquire(
        &self,
        tenant: &TenantId,
        max_wait: Duration,
    ) -> Result<(), RateWaitExceeded> {
        let deadline = Instant::now() + max_wait;
        let (ticket, mut granted) = self.enqueue(tenant);
        loop {
            tokio::select! {
                biased;
                result = &mut granted => {
                    // The sender half is only ever dropped by sending through it, so an error
                    // cannot happen; treat it as a lost turn rather than as permission.
                    return result.map_err(|_| self.exceeded());
                }
                () = sleep_until(deadline) => return self.give_up(tenant, ticket, &mut granted),
                guard = self.dispatcher.lock() => {
                    tokio::select! {
                        biased;
                        () = self.dispatch_one() => {}
                        () = sleep_until(deadline) => {}
                    }
                    drop(guard);
                }
            }
        }
    }

    fn lock(&self) -> MutexGuard<'_, Queues> {
        // Nothing panics while holding the lock; if something did, the queues are still usable.
        self.queues.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn enqueue(&self, tenant: &TenantId) -> (u64, oneshot::Receiver<()>) {
        let (grant, granted) = oneshot::channel();
        let mut queues = self.lock();
        let ticket = queues.next_ticket;
        queues.next_ticket += 1;
        let queue = queues.waiting.entry(tenant.clone()).or_default();
        queue.push_back(Waiter { ticket, grant });
        if queue.len() == 1 {
            queues.ring.push_back(tenant.clone());
        }
        (ticket, granted)
    }

    /// Our deadline passed: leave the queue, unless the grant came in the meantime (grants are
    /// sent under the queues' lock, so a ticket no longer queued has its grant waiting).
    fn give_up(
        &self,
        tenant: &TenantId,
        ticket: u64,
        granted: &mut oneshot::Receiver<()>,
    ) -> Result<(), RateWaitExceeded> {
        let mut queues = self.lock();
        let Some(queue) = queues.waiting.get_mut(tenant) else {
            return granted.try_recv().map_err(|_| self.exceeded_with(0));
        };
        let Some(at) = queue.iter().position(|waiter| waiter.ticket == ticket) else {
            return granted.try_recv().map_err(|_| self.exceeded_with(0));
        };
        queue.remove(at);
        if queue.is_empty() {
            queues.waiting.remove(tenant);
            queues.ring.retain(|queued| queued != tenant);
        }
        let ahead = queues.waiting.values().map(VecDeque::len).sum();
        Err(self.exceeded_with(ahead))
    }

    fn exceeded(&self) -> RateWaitExceeded {
        let ahead = self.lock().waiting.values().map(VecDeque::len).sum();
        self.exceeded_with(ahead)
    }

    fn exceeded_with(&self, ahead: usize) -> RateWaitExceeded {
        // Those ahead, and this one, at the global rate.
        let seconds = ((ahead + 1) as f64 / self.global_rate).clamp(1.0, 3600.0);
        RateWaitExceeded { retry_after: Duration::from_secs_f64(seconds) }
    }

    /// Takes one token of the global rate and hands it to the next waiting tenant under its cap.
    /// Only run by the holder of the dispatcher lock.
    async fn dispatch_one(&self) {
        if self.lock().ring.is_empty() {
            return;
        }
        loop {
            match self.global.check() {
                Ok(()) => break,
                Err(not_until) => sleep(not_until.wait_time_from(self.global.clock().now())).await,
            }
        }
        // From here the token is spent: handing it out has no await point before the grant,
        // except when every waiting tenant is at its cap, and then the global rate is not what
        // holds anyone back.
        loop {
            match self.pass() {
                Pass::Granted | Pass::Nobody => return,
                Pass::AllCapped(wait) => sleep(wait).await,
            }
        }
    }

    /// One round over the waiting tenants, in order, granting the first one that may send.
    fn pass(&self) -> Pass {
        let mut guard = self.lock();
        let queues = &mut *guard;
        let mut first_free: Option<Duration> = None;
        for _ in 0..queues.ring.len() {
            let Some(tenant) = queues.ring.pop_front() else { break };
            let Some(queue) = queues.waiting.get_mut(&tenant) else { continue };
            // Waiters that were dropped (their send was cancelled) give up their place.
            queue.retain(|waiter| !waiter.grant.is_closed());
            if queue.is_empty() {
                queues.waiting.remove(&tenant);
                continue;
            }
            if let Some(cap) = self.caps.get(&tenant)
                && let Err(not_until) = cap.check()
            {
                let wait = not_until.wait_time_from(cap.clock().now());
                first_free = Some(first_free.map_or(wait, |first| first.min(wait)));
                queues.ring.push_back(tenant);
                continue;
            }
            let Some(waiter) = queue.pop_front() else { continue };
            if queue.is_empty() {
                queues.waiting.remove(&tenant);
            } else {
                queues.ring.push_back(tenant);
            }
            if waiter.grant.send(()).is_ok() {
                return Pass::Granted;
            }
            // Dropped between the check above and now: the tenant's cap token is lost, the
            // global one goes to the next tenant.
        }
        match first_free {
            Some(wait) => Pass::AllCapped(wait.max(Duration::from_millis(1))),
            None => Pass::Nobody,
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::sync::Arc;
    use std::time::Instant as StdInstant;

    use super::*;

    fn tenant(name: &str) -> TenantId {
        TenantId::parse(name).unwrap()
    }

    fn limiter(rate: f64, caps: &[(&str, f64)]) -> Arc<FairLimiter> {
        let caps = caps.iter().map(|(name, rate)| (tenant(name), *rate)).collect();
        Arc::new(FairLimiter::new(rate, NonZeroU32::MIN, &caps))
    }

    /// Starts `count` acquisitions for `name`, each recording (tenant, time) on success.
    fn spawn_many(
        limiter: &Arc<FairLimiter>,
        name: &'static str,
        count: usize,
        log: &Arc<Mutex<Vec<(&'static str, Duration)>>>,
        start: StdInstant,
    ) -> Vec<tokio::task::JoinHandle<()>> {
        (0..count)
            .map(|_| {
                let limiter = Arc::clone(limiter);
                let log = Arc::clone(log);
                tokio::spawn(async move {
                    limiter.acquire(&tenant(name), Duration::from_secs(30)).await.unwrap();
                    log.lock().unwrap().push((name, start.elapsed()));
                })
            })
            .collect()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_global_rate_is_shared_round_robin_between_tenants() {
        let limiter = limiter(50.0, &[]);
        let log = Arc::new(Mutex::new(Vec::new()));
        let start = StdInstant::now();
        // The busy tenant queues 40 first; the quiet one 10 just after.
        let mut tasks = spawn_many(&limiter, "busy", 40, &log, start);
        tokio::time::sleep(Duration::from_millis(20)).await;
        tasks.extend(spawn_many(&limiter, "quiet", 10, &log, start));
        for task in tasks {
            task.await.unwrap();
        }
        let log = log.lock().unwrap();
        assert_eq!(log.len(), 50);
        // 49 intervals of 20 ms after the first: about 1 s.
        let total = log.iter().map(|(_, at)| *at).max().unwrap();
        assert!(total >= Duration::from_millis(850), "{total:?}");
        assert!(total < Duration::from_secs(3), "{total:?}");
        // FIFO would serve the quiet tenant last (positions 41-50); round-robin interleaves it,
        // so its last email is among the first ~22 served.
        let last_quiet = log.iter().rposition(|(name, _)| *name == "quiet").unwrap();
        assert!(last_quiet < 26, "quiet tenant's last send was #{last_quiet}: {log:?}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_capped_tenant_waits_without_holding_up_the_others() {
        let limiter = limiter(100.0, &[("capped", 5.0)]);
        let log = Arc::new(Mutex::new(Vec::new()));
        let start = StdInstant::now();
        let mut tasks = spawn_many(&limiter, "capped", 6, &log, start);
        tasks.extend(spawn_many(&limiter, "free", 30, &log, start));
        for task in tasks {
            task.await.unwrap();
        }
        let log = log.lock().unwrap();
        let last = |name: &str| log.iter().filter(|(n, _)| *n == name).map(|(_, at)| *at).max();
        let capped_done = last("capped").unwrap();
        let free_done = last("free").unwrap();
        // 6 at 5/s: 5 intervals of 200 ms.
        assert!(capped_done >= Duration::from_millis(900), "{capped_done:?}");
        // 30 at 100/s would take 0.3 s alone; sharing with the capped tenant adds little.
        assert!(free_done < Duration::from_millis(800), "{free_done:?}");
        // Never more than 2 capped sends in any 250 ms window (5/s, no burst).
        let capped: Vec<Duration> =
            log.iter().filter(|(n, _)| *n == "capped").map(|(_, at)| *at).collect();
        for window in capped.windows(3) {
            assert!(window[2] - window[0] >= Duration::from_millis(300), "{capped:?}");
        }
    }

    #[tokio::test]
    async fn a_wait_beyond_the_limit_gives_up_and_leaves_the_queue() {
        let limiter = limiter(1.0, &[]);
        let acme = tenant("acme");
        limiter.acquire(&acme, Duration::from_secs(1)).await.unwrap();
        let started = StdInstant::now();
        let exceeded = limiter.acquire(&acme, Duration::from_millis(200)).await.unwrap_err();
        let waited = started.elapsed();
        assert!(waited >= Duration::from_millis(190) && waited < Duration::from_millis(900));
        assert_eq!(exceeded.retry_after, Duration::from_secs(1));
        assert!(limiter.lock().waiting.is_empty() && limiter.lock().ring.is_empty());
        // The next token (1 s after the first) still goes to the next caller.
        limiter.acquire(&acme, Duration::from_secs(2)).await.unwrap();
    }

    #[tokio::test]
    async fn a_cancelled_waiter_is_skipped() {
        let limiter = limiter(10.0, &[]);
        let acme = tenant("acme");
        limiter.acquire(&acme, Duration::from_secs(1)).await.unwrap();
        // Cancelled while queued.
        let cancelled = tokio::time::timeout(
            Duration::from_millis(10),
            limiter.acquire(&acme, Duration::from_secs(5)),
        );
        assert!(cancelled.await.is_err());
        let started = StdInstant::now();
        limiter.acquire(&acme, Duration::from_secs(1)).await.unwrap();
        assert!(started.elapsed() < Duration::from_millis(400), "{:?}", started.elapsed());
        assert!(limiter.lock().waiting.is_empty());
    }

    #[test]
    fn quotas_allow_fractional_rates() {
        assert_eq!(quota(0.5, NonZeroU32::MIN).replenish_interval(), Duration::from_secs(2));
        assert_eq!(quota(20.0, NonZeroU32::MIN).replenish_interval(), Duration::from_millis(50));
        assert_eq!(quota(3.0, NonZeroU32::new(4).unwrap()).burst_size().get(), 4);
    }
}
