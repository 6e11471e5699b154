//! Each tenant's share of the consumer's in-flight messages, so that one product's flood or slow
//! sends cannot take the slots every other product needs.
//!
//! While other tenants have messages in this worker, a tenant may hold at most its share of
//! `max_in_flight` (`tenant_share`, or its `tenant_max_in_flight` override); alone it may use
//! them all (the pollers keep one more batch of room, so they go on receiving and see other
//! tenants' messages). A message over its tenant's share gives its slot back to the pollers and waits in
//! a waiting room (as many places as `max_in_flight`; its visibility is renewed meanwhile) until
//! one of its tenant's slots frees; when the room is full it is handed back to the queue with a
//! delay. Slots are counted here, not in a semaphore per tenant, because the limit changes as
//! tenants come and go.

use std::collections::{HashMap, VecDeque};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tayori_domain::TenantId;
use tokio::sync::Notify;
use tokio::time::Instant;

use crate::ConsumerConfig;

/// The slots of every tenant with messages in this worker.
pub(crate) struct TenantSlots {
    max_in_flight: usize,
    share: usize,
    overrides: HashMap<String, usize>,
    counts: Mutex<HashMap<TenantId, Counts>>,
    /// Woken whenever a slot is given back.
    freed: Notify,
}

#[derive(Debug, Default, Clone)]
struct Counts {
    running: usize,
    waiting: usize,
    /// When the messages handed back lately are due to come back, so that the next one is
    /// given a later turn rather than all returning at once.
    away: VecDeque<Instant>,
    /// When one of its messages last left a slot or the line.
    last_active: Option<Instant>,
    /// Average time a message of the tenant held its slot lately (a moving average), for the
    /// delay of a hand-back.
    average_hold: Duration,
}

/// A tenant's slot, given back when dropped (also when the task holding it is aborted).
pub(crate) struct TenantSlot<'a> {
    slots: &'a TenantSlots,
    tenant: TenantId,
    taken_at: Instant,
}

/// A place in a tenant's waiting line, left when dropped.
pub(crate) struct Waiting<'a> {
    slots: &'a TenantSlots,
    tenant: TenantId,
}

impl TenantSlots {
    pub(crate) fn new(config: &ConsumerConfig) -> Self {
        let share = (config.tenant_share * config.max_in_flight as f64).ceil() as usize;
        Self {
            max_in_flight: config.max_in_flight,
            share: share.clamp(1, config.max_in_flight),
            overrides: config.tenant_max_in_flight.clone(),
            counts: Mutex::default(),
            freed: Notify::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<TenantId, Counts>> {
        self.counts.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// How many slots `tenant` may hold now.
    fn limit(&self, counts: &HashMap<TenantId, Counts>, tenant: &TenantId) -> usize {
        let others_busy = counts.iter().any(|(other, c)| other != tenant && c.present());
        if !others_busy {
            return self.max_in_flight;
        }
        self.overrides.get(tenant.as_str()).copied().unwrap_or(self.share)
    }

    /// Slots in use now, every tenant's together.
    pub(crate) fn running(&self) -> usize {
        self.lock().values().map(|c| c.running).sum()
    }

    /// A slot for `tenant` when it is under its share now.
    pub(crate) fn try_take(&self, tenant: &TenantId) -> Option<TenantSlot<'_>> {
        let mut counts = self.lock();
        let limit = self.limit(&counts, tenant);
        let entry = counts.entry(tenant.clone()).or_default();
        if entry.running >= limit {
            return None;
        }
        entry.running += 1;
        report(tenant, entry, limit);
        Some(TenantSlot { slots: self, tenant: tenant.clone(), taken_at: Instant::now() })
    }

    /// Joins `tenant`'s waiting line (counted, so that other tenants' shares apply).
    pub(crate) fn wait_in_line(&self, tenant: &TenantId) -> Waiting<'_> {
        let mut counts = self.lock();
        let limit = self.limit(&counts, tenant);
        let entry = counts.entry(tenant.clone()).or_default();
        entry.waiting += 1;
        report(tenant, entry, limit);
        Waiting { slots: self, tenant: tenant.clone() }
    }

    /// Waits until `tenant` is under its share and takes a slot. Cancel-safe.
    pub(crate) async fn take(&self, tenant: &TenantId) -> TenantSlot<'_> {
        loop {
            // Registered before the check, so a slot freed in between is not missed.
            let freed = self.freed.notified();
            if let Some(slot) = self.try_take(tenant) {
                return slot;
            }
            freed.await;
        }
    }

    /// Hands a message of `tenant` back, when it cannot even wait here: the delay to leave it
    /// away is about when its turn would come, behind those waiting and those handed back
    /// before it, at the pace the tenant's slots work through them (1 s to 15 min). Each
    /// return counts as a receive towards the queue's dead-letter policy, so the turns are
    /// spread rather than all coming back at once.
    pub(crate) fn hand_back(&self, tenant: &TenantId) -> Duration {
        let mut counts = self.lock();
        let limit = self.limit(&counts, tenant).max(1) as u32;
        let now = Instant::now();
        let entry = counts.entry(tenant.clone()).or_default();
        while entry.away.front().is_some_and(|back| *back <= now) {
            entry.away.pop_front();
        }
        let ahead = (entry.waiting + entry.away.len() + 1) as u32;
        let pace = entry.average_hold.max(Duration::from_millis(10));
        let delay = (pace * ahead / limit).clamp(Duration::from_secs(1), Duration::from_secs(900));
        // SQS counts whole seconds.
        let delay = Duration::from_secs(delay.as_secs_f64().ceil() as u64);
        let back = now + delay;
        let at = entry.away.partition_point(|due| *due <= back);
        entry.away.insert(at, back);
        delay
    }

    fn give_back(&self, tenant: &TenantId, held: Duration) {
        self.release(tenant, |entry| {
            entry.running = entry.running.saturating_sub(1);
            // A moving average over about the last eight messages.
            entry.average_hold = (entry.average_hold * 7 + held) / 8;
        });
    }

    fn leave_line(&self, tenant: &TenantId) {
        self.release(tenant, |entry| entry.waiting = entry.waiting.saturating_sub(1));
    }

    /// Applies `change` to a tenant that gives up a slot or a place in line, then wakes every
    /// waiter: the tenant's own may take the slot, and others' limits may have grown back if
    /// the tenant has no work left.
    fn release(&self, tenant: &TenantId, change: impl FnOnce(&mut Counts)) {
        let mut counts = self.lock();
        if let Some(entry) = counts.get_mut(tenant) {
            change(entry);
            entry.last_active = Some(Instant::now());
            let snapshot = entry.clone();
            forget_if_idle(&mut counts, tenant);
            let limit = self.limit(&counts, tenant);
            report(tenant, &snapshot, limit);
        }
        drop(counts);
        self.freed.notify_waiters();
    }
}

/// Drops a tenant with nothing running, waiting or away, so that the map holds only tenants
/// with work (an idle one's average starts afresh). Messages away do not make a tenant busy
/// for the others' shares; they only space its next hand-backs.
fn forget_if_idle(counts: &mut HashMap<TenantId, Counts>, tenant: &TenantId) {
    let now = Instant::now();
    if let Some(entry) = counts.get_mut(tenant) {
        while entry.away.front().is_some_and(|back| *back <= now) {
            entry.away.pop_front();
        }
        if !entry.present() && entry.away.is_empty() {
            counts.remove(tenant);
        }
    }
}

/// How long a tenant counts as present after its last message left its slot: a steady tenant
/// whose messages finish at once is in the worker only now and then, and must still keep a
/// flooding one to its share rather than leave it every slot between two of its messages.
const PRESENT_FOR: Duration = Duration::from_secs(1);

impl Counts {
    /// Has messages here, or had one within [`PRESENT_FOR`].
    fn present(&self) -> bool {
        self.running + self.waiting > 0
            || self.last_active.is_some_and(|at| at.elapsed() < PRESENT_FOR)
    }
}

fn report(tenant: &TenantId, counts: &Counts, limit: usize) {
    tayori_app::telemetry::tenant_slots(tenant.as_str(), counts.running, counts.waiting, limit);
}

impl Drop for TenantSlot<'_> {
    fn drop(&mut self) {
        self.slots.give_back(&self.tenant, self.taken_at.elapsed());
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.slots.leave_line(&self.tenant);
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn tenant(name: &str) -> TenantId {
        TenantId::parse(name).unwrap()
    }

    fn slots(max_in_flight: usize, share: f64, overrides: &[(&str, usize)]) -> TenantSlots {
        TenantSlots::new(&ConsumerConfig {
            max_in_flight,
            tenant_share: share,
            tenant_max_in_flight: overrides.iter().map(|(t, n)| ((*t).to_owned(), *n)).collect(),
            ..ConsumerConfig::default()
        })
    }

    #[test]
    fn a_tenant_alone_may_use_every_slot_and_its_share_once_another_has_work() {
        let slots = slots(10, 0.5, &[]);
        let (flood, quiet) = (tenant("flood"), tenant("quiet"));
        let mut held: Vec<_> = (0..10).map(|_| slots.try_take(&flood).unwrap()).collect();
        assert!(slots.try_take(&flood).is_none(), "the worker is full");
        // Another tenant shows up: the flood is over its share (5) and gets nothing more ...
        let quiet_slot = slots.try_take(&quiet).unwrap();
        drop(held.drain(..3)); // 3 finish: 7 left, still over 5
        assert!(slots.try_take(&flood).is_none());
        // ... while the quiet tenant may take up to its own share.
        let more_quiet: Vec<_> = (0..4).map(|_| slots.try_take(&quiet).unwrap()).collect();
        assert!(slots.try_take(&quiet).is_none(), "5 is its share too");
        drop((quiet_slot, more_quiet));
    }

    #[test]
    fn an_override_replaces_the_share_only_while_others_have_work() {
        let slots = slots(10, 0.5, &[("big", 8)]);
        let (big, small) = (tenant("big"), tenant("small"));
        let _small = slots.try_take(&small).unwrap();
        let held: Vec<_> = (0..8).map(|_| slots.try_take(&big).unwrap()).collect();
        assert!(slots.try_take(&big).is_none());
        assert_eq!(held.len(), 8);
    }

    #[tokio::test]
    async fn a_waiting_message_gets_the_next_slot_its_tenant_frees() {
        let slots = std::sync::Arc::new(slots(4, 0.5, &[]));
        let (flood, quiet) = (tenant("flood"), tenant("quiet"));
        let _quiet = slots.try_take(&quiet).unwrap();
        let first = slots.try_take(&flood).unwrap();
        let _second = slots.try_take(&flood).unwrap();
        let line = slots.wait_in_line(&flood);
        let waiter = {
            let (slots, flood) = (slots.clone(), flood.clone());
            tokio::spawn(async move {
                let _slot = slots.take(&flood).await;
            })
        };
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!waiter.is_finished(), "over its share of 2");
        drop(first);
        tokio::time::timeout(Duration::from_secs(1), waiter).await.unwrap().unwrap();
        drop(line);
        assert_eq!(slots.lock().get(&flood).map(|c| c.waiting), Some(0));
    }

    #[tokio::test]
    async fn hand_backs_are_spread_behind_the_line_at_the_tenants_pace() {
        let slots = slots(4, 0.5, &[]);
        let flood = tenant("flood");
        assert_eq!(slots.hand_back(&flood), Duration::from_secs(1), "nothing known: 1 s");
        let _slot = slots.try_take(&flood).unwrap();
        slots.lock().get_mut(&flood).unwrap().average_hold = Duration::from_secs(2);
        let _lines: Vec<_> = (0..7).map(|_| slots.wait_in_line(&flood)).collect();
        // Alone: 4 slots of 2 s each, 2 a second. Behind 7 waiting and 1 away: 9 / 2 a second.
        assert_eq!(slots.hand_back(&flood), Duration::from_secs(5));
        // The next one comes back after that one.
        assert_eq!(slots.hand_back(&flood), Duration::from_secs(5)); // 10 / 2
        assert_eq!(slots.hand_back(&flood), Duration::from_secs(6)); // 11 / 2, rounded up
        slots.lock().get_mut(&flood).unwrap().average_hold = Duration::from_secs(600);
        assert_eq!(slots.hand_back(&flood), Duration::from_secs(900), "at most 15 min");
    }
}
