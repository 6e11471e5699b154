//! The visible messages of one stand-in queue, kept per message group, and the order a receive
//! takes them in: plain (the order they became visible, as a standard queue without groups) or
//! as Amazon SQS fair queues deliver them on a standard queue (2025).
//!
//! Fair queues, as AWS documents them: a group (`MessageGroupId`, a tenant) counts as noisy
//! when it holds more than 10 % of the queue's messages in flight and at least 30 of its own;
//! while a group is noisy, receives hand out the messages of quiet groups first and the noisy
//! group's only when no quiet group has one visible; a group stays noisy until its backlog is
//! drained (no message of it visible) or it sent nothing for 5 minutes. The other trigger AWS
//! names, more than 10 % of the consumers' recent processing time, is not emulated: in the
//! bench's scenarios a tenant that holds the processing time also holds the messages in flight.
//!
//! The work per message is a few map operations and a scan over the groups (the bench has two
//! or three): the stand-in must not become the bottleneck.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A message group: `None` for a message sent without `MessageGroupId` (never noisy).
pub type Group = Option<Arc<str>>;

/// A group is noisy with more than this share of the queue's messages in flight ...
const NOISY_SHARE_PERCENT: usize = 10;
/// ... and at least this many of its own.
const NOISY_MIN_IN_FLIGHT: usize = 30;
/// A noisy group that sent nothing for this long is quiet again.
const NOISY_IDLE: Duration = Duration::from_secs(300);

/// The visible messages of a queue, by group, with each group's messages in flight.
#[derive(Default)]
pub struct Visible {
    groups: HashMap<Group, GroupState>,
    /// Counts the order in which messages became visible (plain delivery follows it).
    next_seq: u64,
    visible: usize,
    in_flight: usize,
    /// How many times a group was found noisy.
    noisy_episodes: u64,
    /// Receives that handed out a quiet group's message ahead of a noisy group's older one.
    reordered: u64,
}

struct GroupState {
    /// (order of becoming visible, message id), oldest first.
    waiting: VecDeque<(u64, u64)>,
    in_flight: usize,
    noisy: bool,
    last_sent: Instant,
}

impl GroupState {
    fn new() -> Self {
        Self { waiting: VecDeque::new(), in_flight: 0, noisy: false, last_sent: Instant::now() }
    }
}

/// One group's counts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GroupCounts {
    /// Visible.
    pub visible: usize,
    /// Received and not yet deleted or visible again.
    pub in_flight: usize,
    /// Whether the group counts as noisy now.
    pub noisy: bool,
}

impl Visible {
    /// Messages visible, all groups together.
    pub fn len(&self) -> usize {
        self.visible
    }

    /// How many times a group was found noisy, and how many messages were handed out ahead of a
    /// noisy group's older ones.
    pub fn fairness_counts(&self) -> (u64, u64) {
        (self.noisy_episodes, self.reordered)
    }

    /// The counts of `group`.
    pub fn group_counts(&self, group: &Group) -> GroupCounts {
        self.groups
            .get(group)
            .map(|g| GroupCounts {
                visible: g.waiting.len(),
                in_flight: g.in_flight,
                noisy: g.noisy,
            })
            .unwrap_or_default()
    }

    /// A message becomes visible: `sent` for a new message (the group sent something now),
    /// otherwise one coming back (released, or its visibility ran out).
    pub fn push(&mut self, group: &Group, id: u64, sent: bool) {
        let state = self.groups.entry(group.clone()).or_insert_with(GroupState::new);
        if sent {
            state.last_sent = Instant::now();
        }
        state.waiting.push_back((self.next_seq, id));
        self.next_seq += 1;
        self.visible += 1;
    }

    /// Removes a visible message (one deleted after its visibility ran out: rare, a scan).
    pub fn remove(&mut self, group: &Group, id: u64) {
        if let Some(state) = self.groups.get_mut(group)
            && let Some(position) = state.waiting.iter().position(|(_, v)| *v == id)
        {
            state.waiting.remove(position);
            self.visible -= 1;
        }
    }

    /// A message of `group` left the in-flight set (deleted, released, or its visibility ran
    /// out).
    pub fn end_flight(&mut self, group: &Group) {
        if let Some(state) = self.groups.get_mut(group) {
            state.in_flight = state.in_flight.saturating_sub(1);
            self.in_flight = self.in_flight.saturating_sub(1);
        }
    }

    /// Marks groups noisy or quiet again; call once per receive, before [`Visible::pop`].
    pub fn classify(&mut self, now: Instant) {
        let total = self.in_flight;
        for (group, state) in &mut self.groups {
            if state.noisy {
                let idle = now.saturating_duration_since(state.last_sent) >= NOISY_IDLE;
                if state.waiting.is_empty() || idle {
                    state.noisy = false;
                }
            } else if group.is_some()
                && state.in_flight >= NOISY_MIN_IN_FLIGHT
                && state.in_flight * 100 > total * NOISY_SHARE_PERCENT
                && !state.waiting.is_empty()
            {
                state.noisy = true;
                self.noisy_episodes += 1;
            }
        }
    }

    /// Takes the next message to hand out, counting it in flight: the oldest visible one, or
    /// with `fair`, the oldest of the quiet groups' and a noisy group's only when no quiet group
    /// has one.
    pub fn pop(&mut self, fair: bool) -> Option<(Group, u64)> {
        let mut oldest: Option<(&Group, u64, bool)> = None;
        let mut oldest_quiet: Option<(&Group, u64)> = None;
        for (group, state) in &self.groups {
            let Some(&(seq, _)) = state.waiting.front() else { continue };
            if oldest.is_none_or(|(_, s, _)| seq < s) {
                oldest = Some((group, seq, state.noisy));
            }
            if !state.noisy && oldest_quiet.is_none_or(|(_, s)| seq < s) {
                oldest_quiet = Some((group, seq));
            }
        }
        let group = match (fair, oldest, oldest_quiet) {
            (_, None, _) => return None,
            (true, Some((_, _, true)), Some((quiet, _))) => {
                self.reordered += 1;
                quiet.clone()
            }
            (_, Some((group, _, _)), _) => group.clone(),
        };
        let state = self.groups.get_mut(&group)?;
        let (_, id) = state.waiting.pop_front()?;
        state.in_flight += 1;
        self.visible -= 1;
        self.in_flight += 1;
        Some((group, id))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn group(name: &str) -> Group {
        Some(Arc::from(name))
    }

    #[test]
    fn plain_delivery_is_the_order_of_arrival_and_fair_delivery_puts_quiet_groups_first() {
        let (noisy, quiet) = (group("noisy"), group("quiet"));
        for fair in [false, true] {
            let mut visible = Visible::default();
            for id in 0..100 {
                visible.push(&noisy, id, true);
            }
            visible.push(&quiet, 1000, true);
            visible.classify(Instant::now());
            // 40 of the noisy group in flight: 100 % of the queue's and at least 30.
            let first: Vec<u64> = (0..40).filter_map(|_| visible.pop(fair)).map(|m| m.1).collect();
            assert_eq!(first, (0..40).collect::<Vec<_>>(), "nobody is noisy yet");
            visible.classify(Instant::now());
            assert!(visible.group_counts(&noisy).noisy);
            let next = visible.pop(fair).unwrap();
            if fair {
                assert_eq!(next, (quiet.clone(), 1000), "the quiet group's message first");
                assert_eq!(visible.pop(fair).unwrap().1, 40, "then the noisy group's");
                assert_eq!(visible.fairness_counts(), (1, 1));
            } else {
                assert_eq!(next.1, 40, "plain: the order of arrival");
            }
        }
    }

    #[test]
    fn a_group_is_noisy_above_a_tenth_of_the_flight_with_at_least_30_until_its_backlog_drains() {
        let (a, b) = (group("a"), group("b"));
        let mut visible = Visible::default();
        for id in 0..300 {
            visible.push(&b, id, true);
        }
        for id in 1000..1031 {
            visible.push(&a, id, true);
        }
        for _ in 0..300 {
            visible.pop(false);
        }
        for _ in 0..29 {
            visible.pop(false);
        }
        visible.classify(Instant::now());
        assert!(!visible.group_counts(&b).noisy, "b has nothing visible");
        assert!(!visible.group_counts(&a).noisy, "a: 29 in flight, under 30");
        visible.pop(false); // a: 30 in flight of 330 (9 %)
        visible.classify(Instant::now());
        assert!(!visible.group_counts(&a).noisy, "not more than 10 %");
        for _ in 0..300 {
            visible.end_flight(&b); // b's are deleted: a holds all 30 in flight
        }
        visible.classify(Instant::now());
        assert!(visible.group_counts(&a).noisy);
        visible.pop(false);
        assert_eq!(visible.group_counts(&a).visible, 0);
        visible.classify(Instant::now());
        assert!(!visible.group_counts(&a).noisy, "its backlog is drained");
    }
}
