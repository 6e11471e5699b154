//! The send-rate limiter: one global rate shared among tenants by weighted round robin, plus
//! optional per-tenant caps, with a bounded wait.
//!
//! The buckets are governor's (GCRA). Fairness is ours: every waiting email sits in its
//! tenant's queue, and the tokens of the global rate go round the tenants that have an email
//! waiting and are under their own cap, each getting as many in a row as its weight (1 unless
//! `weight` is set in its `tenant.toml`). A tenant with a thousand emails queued therefore gets
//! the same share as one with two of the same weight (max-min fairness), and a tenant at its
//! cap never holds up the others. There is no background task: whichever waiter holds the
//! dispatcher lock hands out the next token, to itself or to someone else, so the limiter
//! costs nothing when idle and needs no shutdown.
//!
//! The global rate can change while sends wait (the workers re-divide the account's rate when
//! one joins or leaves): a governor quota is fixed per limiter, so a change puts a new direct
//! limiter in place and wakes the dispatcher, which otherwise could sleep out a long wait
//! computed under the old rate.

use std::collections::{HashMap, VecDeque};
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock};
use std::time::Duration;

use governor::clock::Clock;
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use tayori_domain::TenantId;
use tokio::sync::{Notify, oneshot};
use tokio::time::{Instant, sleep, sleep_until};

/// The wait for a send slot ran out; the email was not sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RateWaitExceeded {
    /// A guess at when a slot may be free: the emails queued ahead and this one, at the global
    /// rate; between 1 s and 1 h.
    pub retry_after: Duration,
}

/// How one tenant is paced beside the others.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct TenantPace {
    /// Its own cap in emails per second, if any.
    pub cap: Option<f64>,
    /// Tokens it gets in a row when its turn comes (at least 1).
    pub weight: u32,
}

/// See the module documentation.
pub(crate) struct FairLimiter {
    global: RwLock<Global>,
    burst: NonZeroU32,
    /// Wakes the dispatcher when the global rate changes.
    changed: Notify,
    caps: HashMap<TenantId, DefaultDirectRateLimiter>,
    /// The caps' rates, for [`FairLimiter::expected_wait`].
    cap_rates: HashMap<TenantId, f64>,
    weights: HashMap<TenantId, u32>,
    queues: Mutex<Queues>,
    /// Held by the one waiter that hands out the next token.
    dispatcher: tokio::sync::Mutex<()>,
}

/// The global rate in force and its bucket.
struct Global {
    limiter: Arc<DefaultDirectRateLimiter>,
    rate: f64,
}

#[derive(Default)]
struct Queues {
    next_ticket: u64,
    /// Tenants with at least one email waiting, in the order they are served: front first.
    ring: VecDeque<TenantId>,
    /// Tokens the tenant at the front of `ring` got in its current turn.
    turn: u32,
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
    /// A limiter allowing `global_rate` emails per second (bursts of `burst`) in all, each
    /// tenant in `paces` at most its cap (no bursts) and its weight in tokens per turn; tenants
    /// not in `paces` have no cap and weight 1.
    pub(crate) fn new(
        global_rate: f64,
        burst: NonZeroU32,
        paces: &HashMap<TenantId, TenantPace>,
    ) -> Self {
        Self {
            global: RwLock::new(Global {
                limiter: Arc::new(RateLimiter::direct(quota(global_rate, burst))),
                rate: global_rate,
            }),
            burst,
            changed: Notify::new(),
            caps: paces
                .iter()
                .filter_map(|(tenant, pace)| {
                    let cap = RateLimiter::direct(quota(pace.cap?, NonZeroU32::MIN));
                    Some((tenant.clone(), cap))
                })
                .collect(),
            cap_rates: paces
                .iter()
                .filter_map(|(tenant, pace)| Some((tenant.clone(), pace.cap?)))
                .collect(),
            weights: paces
                .iter()
                .filter(|(_, pace)| pace.weight > 1)
                .map(|(tenant, pace)| (tenant.clone(), pace.weight))
                .collect(),
            queues: Mutex::new(Queues::default()),
            dispatcher: tokio::sync::Mutex::new(()),
        }
    }

    /// About how long an email of `tenant` queued now would wait: those of the tenant waiting
    /// ahead of it, at the lower of its cap and its weighted share of the global rate among
    /// the tenants waiting now (itself included).
    pub(crate) fn expected_wait(&self, tenant: &TenantId) -> Duration {
        let weight = |t: &TenantId| f64::from(self.weights.get(t).copied().unwrap_or(1));
        let rate = self.rate();
        let queues = self.lock();
        let ahead = queues.waiting.get(tenant).map_or(0, VecDeque::len);
        let others: f64 = queues.ring.iter().filter(|t| *t != tenant).map(weight).sum();
        drop(queues);
        let share = rate * weight(tenant) / (weight(tenant) + others);
        let pace = self.cap_rates.get(tenant).map_or(share, |cap| cap.min(share));
        if ahead == 0 || pace <= 0.0 {
            return Duration::ZERO;
        }
        Duration::from_secs_f64(((ahead + 1) as f64 / pace).min(3600.0))
    }

    /// The global rate in force, in emails per second.
    pub(crate) fn rate(&self) -> f64 {
        self.global.read().unwrap_or_else(PoisonError::into_inner).rate
    }

    /// Changes the global rate (the caller checks 0 < `rate` <= 1e6). Sends waiting now are
    /// paced by the new rate from their next token on; the new bucket starts full, so a change
    /// may let one burst through early, which only matters if rates changed many times a
    /// second.
    pub(crate) fn set_rate(&self, rate: f64) {
        {
            let mut global = self.global.write().unwrap_or_else(PoisonError::into_inner);
            if global.rate == rate {
                return;
            }
            *global =
                Global { limiter: Arc::new(RateLimiter::direct(quota(rate, self.burst))), rate };
        }
        self.changed.notify_waiters();
    }

    fn global_limiter(&self) -> Arc<DefaultDirectRateLimiter> {
        Arc::clone(&self.global.read().unwrap_or_else(PoisonError::into_inner).limiter)
    }

    fn weight(&self, tenant: &TenantId) -> u32 {
        self.weights.get(tenant).copied().unwrap_or(1)
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
            if queues.ring.front() == Some(tenant) {
                queues.turn = 0;
            }
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
        let seconds = ((ahead + 1) as f64 / self.rate()).clamp(1.0, 3600.0);
        RateWaitExceeded { retry_after: Duration::from_secs_f64(seconds) }
    }

    /// Takes one token of the global rate and hands it to the next waiting tenant under its cap.
    /// Only run by the holder of the dispatcher lock.
    async fn dispatch_one(&self) {
        if self.lock().ring.is_empty() {
            return;
        }
        loop {
            // Registered before the check, so that a change between the check and the sleep
            // still wakes this sleep.
            let changed = self.changed.notified();
            let global = self.global_limiter();
            match global.check() {
                Ok(()) => break,
                Err(not_until) => {
                    let wait = not_until.wait_time_from(global.clock().now());
                    tokio::select! {
                        () = sleep(wait) => {}
                        () = changed => {}
                    }
                }
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

    /// One round over the waiting tenants, in order, granting the first one that may send. The
    /// tenant at the front keeps its place until it has had as many tokens in a row as its
    /// weight (or has nobody waiting, or meets its cap).
    fn pass(&self) -> Pass {
        let mut guard = self.lock();
        let queues = &mut *guard;
        let mut first_free: Option<Duration> = None;
        for _ in 0..queues.ring.len() {
            let Some(tenant) = queues.ring.front().cloned() else { break };
            let Some(queue) = queues.waiting.get_mut(&tenant) else {
                queues.ring.pop_front();
                queues.turn = 0;
                continue;
            };
            // Waiters that were dropped (their send was cancelled) give up their place.
            queue.retain(|waiter| !waiter.grant.is_closed());
            if queue.is_empty() {
                queues.waiting.remove(&tenant);
                queues.ring.pop_front();
                queues.turn = 0;
                continue;
            }
            if let Some(cap) = self.caps.get(&tenant)
                && let Err(not_until) = cap.check()
            {
                let wait = not_until.wait_time_from(cap.clock().now());
                first_free = Some(first_free.map_or(wait, |first| first.min(wait)));
                queues.ring.rotate_left(1);
                queues.turn = 0;
                continue;
            }
            let Some(waiter) = queue.pop_front() else { continue };
            let more_waiting = !queue.is_empty();
            queues.turn += 1;
            if !more_waiting {
                queues.waiting.remove(&tenant);
                queues.ring.pop_front();
                queues.turn = 0;
            } else if queues.turn >= self.weight(&tenant) {
                queues.ring.rotate_left(1);
                queues.turn = 0;
            }
            if waiter.grant.send(()).is_ok() {
                return Pass::Granted;
            }
            // Dropped between the check above and now: the tenant's cap token is lost, the
            // global one goes to the next waiter.
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
        let paces = caps
            .iter()
            .map(|(name, rate)| (tenant(name), TenantPace { cap: Some(*rate), weight: 1 }))
            .collect();
        Arc::new(FairLimiter::new(rate, NonZeroU32::MIN, &paces))
    }

    fn weighted(rate: f64, weights: &[(&str, u32)]) -> Arc<FairLimiter> {
        let paces = weights
            .iter()
            .map(|(name, weight)| (tenant(name), TenantPace { cap: None, weight: *weight }))
            .collect();
        Arc::new(FairLimiter::new(rate, NonZeroU32::MIN, &paces))
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

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn weights_give_a_tenant_that_many_sends_per_turn() {
        let limiter = weighted(100.0, &[("heavy", 3)]);
        // The first token goes now; the waiters below queue meanwhile.
        limiter.acquire(&tenant("heavy"), Duration::from_secs(1)).await.unwrap();
        let log = Arc::new(Mutex::new(Vec::new()));
        let start = StdInstant::now();
        let mut tasks = spawn_many(&limiter, "heavy", 60, &log, start);
        tasks.extend(spawn_many(&limiter, "light", 20, &log, start));
        for task in tasks {
            task.await.unwrap();
        }
        let log = log.lock().unwrap();
        assert_eq!(log.len(), 80);
        // From light's first turn on, while both wait, heavy gets 3 for light's 1: 10 of the
        // next 40 grants are light's (however many heavy got before light had queued).
        let first_light = log.iter().position(|(name, _)| *name == "light").unwrap();
        assert!(first_light <= 10, "light waited behind heavy's whole queue: {log:?}");
        let window = &log[first_light..first_light + 40];
        let light = window.iter().filter(|(name, _)| *name == "light").count();
        assert!((9..=11).contains(&light), "light got {light} of 40: {log:?}");
        // The rate is the global one whoever gets the tokens: 79 intervals of 10 ms.
        let total = log.iter().map(|(_, at)| *at).max().unwrap();
        assert!(total >= Duration::from_millis(700), "{total:?}");
        // Once light is done, heavy has the whole rate: no turn is left waiting for light.
        assert!(total < Duration::from_secs(2), "{total:?}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn weights_do_not_lift_a_tenant_above_its_cap() {
        let paces = [
            (tenant("heavy"), TenantPace { cap: Some(10.0), weight: 5 }),
            (tenant("light"), TenantPace { cap: None, weight: 1 }),
        ]
        .into_iter()
        .collect();
        let limiter = Arc::new(FairLimiter::new(100.0, NonZeroU32::MIN, &paces));
        let log = Arc::new(Mutex::new(Vec::new()));
        let start = StdInstant::now();
        let mut tasks = spawn_many(&limiter, "heavy", 6, &log, start);
        tasks.extend(spawn_many(&limiter, "light", 30, &log, start));
        for task in tasks {
            task.await.unwrap();
        }
        let log = log.lock().unwrap();
        let heavy: Vec<Duration> =
            log.iter().filter(|(n, _)| *n == "heavy").map(|(_, at)| *at).collect();
        // 6 at 10/s: at least 5 intervals of 100 ms whatever the weight.
        assert!(heavy[5] >= Duration::from_millis(450), "{heavy:?}");
        let light_done = log.iter().filter(|(n, _)| *n == "light").map(|(_, at)| *at).max();
        assert!(light_done.unwrap() < Duration::from_millis(800), "{log:?}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_rate_change_applies_to_sends_already_waiting() {
        let limiter = limiter(0.5, &[]);
        let acme = tenant("acme");
        limiter.acquire(&acme, Duration::from_secs(1)).await.unwrap();
        let start = StdInstant::now();
        // The next token is 2 s away at 0.5/s; the dispatcher sleeps on it.
        let waiting = {
            let limiter = Arc::clone(&limiter);
            let acme = acme.clone();
            tokio::spawn(async move { limiter.acquire(&acme, Duration::from_secs(5)).await })
        };
        tokio::time::sleep(Duration::from_millis(100)).await;
        limiter.set_rate(20.0);
        assert_eq!(limiter.rate(), 20.0);
        waiting.await.unwrap().unwrap();
        assert!(start.elapsed() < Duration::from_millis(600), "{:?}", start.elapsed());

        // The new rate paces what follows: 21 sends at 20/s take 1 s.
        let log = Arc::new(Mutex::new(Vec::new()));
        let start = StdInstant::now();
        for task in spawn_many(&limiter, "acme", 21, &log, start) {
            task.await.unwrap();
        }
        let total = log.lock().unwrap().iter().map(|(_, at)| *at).max().unwrap();
        assert!(total >= Duration::from_millis(900), "{total:?}");
        assert!(total < Duration::from_millis(1500), "{total:?}");

        // Lowered while sends wait: 10/s from the change on.
        let log = Arc::new(Mutex::new(Vec::new()));
        let start = StdInstant::now();
        let tasks = spawn_many(&limiter, "acme", 12, &log, start);
        tokio::time::sleep(Duration::from_millis(120)).await;
        limiter.set_rate(10.0);
        for task in tasks {
            task.await.unwrap();
        }
        let mut times: Vec<Duration> = log.lock().unwrap().iter().map(|(_, at)| *at).collect();
        times.sort_unstable();
        let after_change: Vec<&Duration> =
            times.iter().filter(|at| **at > Duration::from_millis(130)).collect();
        // About 9 sends left after the change, 100 ms apart (the new bucket lets one through
        // at once).
        let span = **after_change.last().unwrap() - **after_change.first().unwrap();
        let expected = Duration::from_millis(100) * (after_change.len() as u32 - 1);
        assert!(span + Duration::from_millis(60) >= expected, "{times:?}");
    }

    #[tokio::test]
    async fn the_expected_wait_counts_the_tenants_queue_at_its_cap_or_share() {
        let limiter = limiter(10.0, &[("capped", 2.0)]);
        let (capped, free) = (tenant("capped"), tenant("free"));
        assert_eq!(limiter.expected_wait(&capped), Duration::ZERO, "nothing waiting");
        // Queue 6 of each (the first token goes at once; the rest wait).
        let mut tasks = Vec::new();
        for name in ["capped", "free"] {
            for _ in 0..6 {
                let limiter = limiter.clone();
                tasks.push(tokio::spawn(async move {
                    let _ = limiter.acquire(&tenant(name), Duration::from_secs(30)).await;
                }));
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        let waiting = |t: &TenantId| limiter.lock().waiting.get(t).map_or(0, VecDeque::len);
        let (ahead_capped, ahead_free) = (waiting(&capped), waiting(&free));
        assert!(ahead_capped >= 4 && ahead_free >= 4, "{ahead_capped} {ahead_free}");
        // The capped tenant: its queue at 2/s (below its share of 5/s).
        let expected = Duration::from_secs_f64((ahead_capped + 1) as f64 / 2.0);
        let got = limiter.expected_wait(&capped);
        assert!(got.abs_diff(expected) < Duration::from_millis(1), "{got:?} vs {expected:?}");
        // The free one: its half of 10/s.
        let expected = Duration::from_secs_f64((ahead_free + 1) as f64 / 5.0);
        let got = limiter.expected_wait(&free);
        assert!(got.abs_diff(expected) < Duration::from_millis(1), "{got:?} vs {expected:?}");
        for task in tasks {
            task.abort();
        }
    }

    #[test]
    fn quotas_allow_fractional_rates() {
        assert_eq!(quota(0.5, NonZeroU32::MIN).replenish_interval(), Duration::from_secs(2));
        assert_eq!(quota(20.0, NonZeroU32::MIN).replenish_interval(), Duration::from_millis(50));
        assert_eq!(quota(3.0, NonZeroU32::new(4).unwrap()).burst_size().get(), 4);
    }
}
