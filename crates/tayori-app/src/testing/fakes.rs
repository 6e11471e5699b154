use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, TimeZone, Utc};
use serde_json::{Value, json};
use tayori_domain::{
    DeliveryId, DeliveryStatus, DisplayName, EmailAddress, Event, EventType, IdempotencyKey,
    Locale, Mailbox, Outcome, OutgoingEmail, Subject, TenantId,
};

use crate::ports::{
    AttemptEnd, AttemptRecord, AttemptResult, Claim, ClaimRequest, Clock, DeadLetterDepth,
    DeadLetterError, DeadLetterMessage, DeadLetters, DeliveryCursor, DeliveryPage, DeliveryQuery,
    DeliveryRecord, DeliveryStore, EmailSender, HeldEntry, HeldEvent, HeldEvents, HeldSummary,
    LeasedEvent, MessageClass, RecordOutcome, RenderError, RenderedEmail, SendError, SentEmail,
    StoreError, Suppression, SuppressionError, SuppressionList, TemplateRenderer, TenantDirectory,
    TenantHolding, TenantPauseList, TenantProfile, UnkeyedRejection, UnkeyedRejectionRecord,
    refuse_nul,
};

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The contract's example event as a JSON value, for tests to vary.
pub fn example_event() -> Value {
    json!({
        "specversion": "1.0",
        "id": "01JD8Z6Q7K2V4X9M3N5P1R0T8W",
        "source": "acme-invest/accounts",
        "type": "account.deposit_completed",
        "time": "2026-11-27T10:00:00Z",
        "tenant": "acme-invest",
        "datacontenttype": "application/json",
        "data": {
            "to": { "email": "taro.yamada@example.com", "name": "山田 太郎", "locale": "ja" },
            "variables": { "amount": 50000, "currency": "JPY" }
        }
    })
}

/// A tenant profile with a sender at `<tenant>.example`.
pub fn tenant_profile(tenant: &str) -> TenantProfile {
    let parse = |s: &str| EmailAddress::parse(s).expect("valid test address");
    TenantProfile {
        id: TenantId::parse(tenant).expect("valid test tenant"),
        from: Mailbox {
            address: parse(&format!("no-reply@{tenant}.example")),
            name: Some(DisplayName::parse("Acme").expect("valid name")),
        },
        reply_to: None,
        default_locale: Locale::parse("en").expect("valid locale"),
        sending: Default::default(),
        max_send_rate: None,
        publishers: Default::default(),
        weight: 1,
    }
}

/// A clock that moves only when told to (or when slept on).
#[derive(Debug)]
pub struct ManualClock(Mutex<DateTime<Utc>>);

impl ManualClock {
    /// Starts at 2026-11-27T10:00:00Z.
    pub fn new() -> Self {
        Self(Mutex::new(Utc.with_ymd_and_hms(2026, 11, 27, 10, 0, 0).single().unwrap_or_default()))
    }

    /// Moves the time forward.
    pub fn advance(&self, by: Duration) {
        let mut now = lock(&self.0);
        *now += chrono::Duration::from_std(by).unwrap_or_default();
    }
}

impl Default for ManualClock {
    fn default() -> Self {
        Self::new()
    }
}

#[async_trait]
impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        *lock(&self.0)
    }

    async fn sleep(&self, duration: Duration) {
        self.advance(duration);
    }
}

/// Tenants configured in memory.
#[derive(Debug, Default)]
pub struct FakeTenants(HashMap<TenantId, Arc<TenantProfile>>);

impl FakeTenants {
    /// The given tenants, each with [`tenant_profile`].
    pub fn with(tenants: &[&str]) -> Self {
        Self(
            tenants
                .iter()
                .map(|t| {
                    let profile = tenant_profile(t);
                    (profile.id.clone(), Arc::new(profile))
                })
                .collect(),
        )
    }
}

impl FakeTenants {
    /// Exactly these profiles.
    pub fn of(profiles: Vec<TenantProfile>) -> Self {
        Self(profiles.into_iter().map(|p| (p.id.clone(), Arc::new(p))).collect())
    }
}

impl TenantDirectory for FakeTenants {
    fn tenant(&self, id: &TenantId) -> Option<Arc<TenantProfile>> {
        self.0.get(id).cloned()
    }
}

/// Renders `"<type> for <email>"`; knows only the event types it was given; fails with a
/// template error when the variables hold `"fail": true`; declares the variable `otp` sensitive.
#[derive(Debug)]
pub struct FakeRenderer {
    known_types: HashSet<String>,
}

impl FakeRenderer {
    /// Knows these event types.
    pub fn knowing(types: &[&str]) -> Self {
        Self { known_types: types.iter().map(|t| t.to_string()).collect() }
    }
}

impl TemplateRenderer for FakeRenderer {
    fn render(&self, tenant: &TenantProfile, event: &Event) -> Result<RenderedEmail, RenderError> {
        if !self.known_types.contains(event.event_type.as_str()) {
            return Err(RenderError::NoTemplate {
                tenant: tenant.id.to_string(),
                event_type: event.event_type.to_string(),
            });
        }
        if event.variables.get("fail") == Some(&Value::Bool(true)) {
            return Err(RenderError::Template {
                reason: "body.html:1: variable `x` not found".into(),
            });
        }
        let subject = format!("{} for {}", event.event_type, event.recipient.email);
        Ok(RenderedEmail {
            subject: Subject::parse(&subject)
                .map_err(|e| RenderError::Template { reason: e.to_string() })?,
            html: format!("<p>{}</p>", event.variables.len()),
            text: format!("{} variables", event.variables.len()),
            locale: event.recipient.locale.clone().unwrap_or_else(|| tenant.default_locale.clone()),
            message_class: MessageClass::Transactional,
        })
    }

    fn sensitive_variables(&self, _tenant: &TenantId, _event_type: &EventType) -> Vec<String> {
        vec!["otp".into()]
    }
}

/// Records what it was asked to send; answers from a script, then with success.
#[derive(Debug, Default)]
pub struct RecordingSender {
    sent: Mutex<Vec<OutgoingEmail>>,
    script: Mutex<VecDeque<SendError>>,
    calls: Mutex<u32>,
    /// What [`EmailSender::expected_wait`] answers, per tenant.
    waits: Mutex<HashMap<TenantId, Duration>>,
}

impl RecordingSender {
    /// Answers the next calls with these errors, in order, then succeeds.
    pub fn failing_with(errors: Vec<SendError>) -> Self {
        Self { script: Mutex::new(errors.into()), ..Self::default() }
    }

    /// Answers the next calls with these errors, in order, after any already scripted.
    pub fn fail_next(&self, errors: Vec<SendError>) {
        lock(&self.script).extend(errors);
    }

    /// Emails accepted so far.
    pub fn sent(&self) -> Vec<OutgoingEmail> {
        lock(&self.sent).clone()
    }

    /// Calls made so far, failed ones included.
    pub fn calls(&self) -> u32 {
        *lock(&self.calls)
    }

    /// Says that `tenant`'s emails would wait `wait` under the rate limits from now on.
    pub fn expect_wait(&self, tenant: &TenantId, wait: Duration) {
        lock(&self.waits).insert(tenant.clone(), wait);
    }
}

#[async_trait]
impl EmailSender for RecordingSender {
    async fn send(&self, email: &OutgoingEmail) -> Result<SentEmail, SendError> {
        *lock(&self.calls) += 1;
        if let Some(error) = lock(&self.script).pop_front() {
            return Err(error);
        }
        let mut sent = lock(&self.sent);
        sent.push(email.clone());
        Ok(SentEmail { provider_message_id: format!("fake-{}", sent.len()) })
    }

    fn expected_wait(&self, tenant: &TenantId) -> Duration {
        lock(&self.waits).get(tenant).copied().unwrap_or_default()
    }
}

/// Suppresses the given (tenant, address) pairs; can be made unavailable.
#[derive(Debug, Default)]
pub struct FakeSuppressions {
    entries: Mutex<HashSet<(String, String)>>,
    unsubscribed: Mutex<HashSet<(String, String)>>,
    unavailable: Mutex<bool>,
}

impl FakeSuppressions {
    /// Adds an entry.
    pub fn suppress(&self, tenant: &str, address: &str) {
        lock(&self.entries).insert((tenant.to_owned(), address.to_owned()));
    }

    /// Adds an unsubscribe: an entry for `subscription` mail only.
    pub fn unsubscribe(&self, tenant: &str, address: &str) {
        lock(&self.unsubscribed).insert((tenant.to_owned(), address.to_owned()));
    }

    /// Makes every check fail (or work again).
    pub fn set_unavailable(&self, unavailable: bool) {
        *lock(&self.unavailable) = unavailable;
    }
}

#[async_trait]
impl SuppressionList for FakeSuppressions {
    async fn check(
        &self,
        tenant: &TenantId,
        address: &EmailAddress,
        class: MessageClass,
    ) -> Result<Option<Suppression>, SuppressionError> {
        if *lock(&self.unavailable) {
            return Err(SuppressionError::Unavailable("fake outage".into()));
        }
        let key = (tenant.to_string(), address.to_string());
        if lock(&self.entries).contains(&key) {
            return Ok(Some(Suppression { reason: "tenant list: test entry".into() }));
        }
        let unsubscribed =
            class == MessageClass::Subscription && lock(&self.unsubscribed).contains(&key);
        Ok(unsubscribed.then(|| Suppression { reason: "unsubscribed: test entry".into() }))
    }
}

#[derive(Debug, Default)]
struct StoreState {
    deliveries: HashMap<DeliveryId, DeliveryRecord>,
    attempts: BTreeMap<(DeliveryId, u32), AttemptRecord>,
    unkeyed: HashMap<String, UnkeyedRejectionRecord>,
}

/// A [`DeliveryStore`] in memory; passes the conformance suite (NUL in text refused, as
/// PostgreSQL refuses it). Can be made unavailable to test how the use case handles outages,
/// or made to refuse writes as a store refuses data it cannot keep.
#[derive(Debug, Default)]
pub struct InMemoryStore {
    state: Mutex<StoreState>,
    /// (calls to let through first, calls to fail after them)
    outage: Mutex<(u32, u32)>,
    /// Writes still to refuse as PostgreSQL refuses data it cannot keep.
    refusals: Mutex<u32>,
}

impl InMemoryStore {
    /// Makes the next `calls` calls fail with `Unavailable`.
    pub fn fail_next(&self, calls: u32) {
        self.fail_calls_after(0, calls);
    }

    /// Lets `ok` calls through, then fails the `failing` calls after them with `Unavailable`.
    pub fn fail_calls_after(&self, ok: u32, failing: u32) {
        *lock(&self.outage) = (ok, failing);
    }

    /// Makes the next `writes` writes (claims, outcomes, attempt results, unkeyed rejections)
    /// fail with `Refused`, as a store refuses data it cannot keep, changing nothing.
    pub fn refuse_next_writes(&self, writes: u32) {
        *lock(&self.refusals) = writes;
    }

    /// The port's text rule ([`refuse_nul`]), then any refusal asked for.
    fn check_storable(&self, texts: &[(&str, Option<&str>)]) -> Result<(), StoreError> {
        refuse_nul(texts)?;
        let mut refusals = lock(&self.refusals);
        if *refusals > 0 {
            *refusals -= 1;
            return Err(StoreError::Refused("fake refusal of this data".into()));
        }
        Ok(())
    }

    fn check_available(&self) -> Result<(), StoreError> {
        let mut outage = lock(&self.outage);
        if outage.0 > 0 {
            outage.0 -= 1;
        } else if outage.1 > 0 {
            outage.1 -= 1;
            return Err(StoreError::Unavailable("fake outage".into()));
        }
        Ok(())
    }
}

#[async_trait]
impl DeliveryStore for InMemoryStore {
    async fn claim(&self, request: &ClaimRequest) -> Result<Claim, StoreError> {
        self.check_available()?;
        self.check_storable(&[
            ("event_json", request.event_json.as_deref()),
            ("lease_owner", Some(&request.owner)),
        ])?;
        let mut state = lock(&self.state);
        let id = request.key.delivery_id();
        let lease_end = request.now + chrono::Duration::from_std(request.lease).unwrap_or_default();
        let Some(record) = state.deliveries.get_mut(&id) else {
            state.deliveries.insert(
                id,
                DeliveryRecord {
                    delivery_id: id,
                    tenant: request.key.tenant.clone(),
                    source: request.key.source.to_string(),
                    event_id: request.key.id.to_string(),
                    event_type: request.event_type.as_ref().map(ToString::to_string),
                    recipient: request.recipient.as_ref().map(ToString::to_string),
                    status: DeliveryStatus::Processing,
                    reason: None,
                    provider_message_id: None,
                    subject: None,
                    claim_count: 1,
                    duplicate_count: 0,
                    receive_count: request.receive_count,
                    lease_expires_at: Some(lease_end),
                    event_json: request.event_json.clone(),
                    raw_body: request.raw_body.as_ref().map(|r| r.kept.clone()),
                    created_at: request.now,
                    updated_at: request.now,
                    decided_at: None,
                    reconciled_at: None,
                },
            );
            return Ok(Claim::Claimed { attempt: 1 });
        };
        if record.status.is_decided() {
            return Ok(Claim::AlreadyDecided { status: record.status });
        }
        match record.lease_expires_at {
            Some(end) if end > request.now => Ok(Claim::InFlight { lease_expires_at: end }),
            _ => {
                record.claim_count += 1;
                record.receive_count = request.receive_count;
                record.lease_expires_at = Some(lease_end);
                record.updated_at = request.now;
                Ok(Claim::Claimed { attempt: record.claim_count })
            }
        }
    }

    async fn release(&self, key: &IdempotencyKey, at: DateTime<Utc>) -> Result<(), StoreError> {
        self.check_available()?;
        if let Some(record) = lock(&self.state).deliveries.get_mut(&key.delivery_id())
            && !record.status.is_decided()
        {
            record.lease_expires_at = Some(at);
            record.updated_at = at;
        }
        Ok(())
    }

    async fn record_outcome(
        &self,
        key: &IdempotencyKey,
        outcome: &Outcome,
        subject: Option<&Subject>,
        at: DateTime<Utc>,
    ) -> Result<RecordOutcome, StoreError> {
        self.check_available()?;
        self.check_storable(&[
            ("reason", outcome.reason()),
            ("provider_message_id", outcome.provider_message_id()),
            ("subject", subject.map(Subject::as_str)),
        ])?;
        let mut state = lock(&self.state);
        let record = state
            .deliveries
            .get_mut(&key.delivery_id())
            .ok_or_else(|| StoreError::Unexpected(anyhow::anyhow!("no delivery for {key}")))?;
        if record.status.is_decided() {
            return Ok(RecordOutcome::AlreadyDecided { status: record.status });
        }
        record.status = outcome.status();
        record.reason = outcome.reason().map(str::to_owned);
        record.provider_message_id = outcome.provider_message_id().map(str::to_owned);
        record.subject = subject.map(|s| s.as_str().to_owned());
        record.lease_expires_at = None;
        record.decided_at = Some(at);
        record.updated_at = at;
        Ok(RecordOutcome::Recorded)
    }

    async fn record_duplicate(
        &self,
        key: &IdempotencyKey,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        self.check_available()?;
        if let Some(record) = lock(&self.state).deliveries.get_mut(&key.delivery_id()) {
            record.duplicate_count += 1;
            record.updated_at = at;
        }
        Ok(())
    }

    async fn record_attempt_started(
        &self,
        key: &IdempotencyKey,
        attempt: u32,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        self.check_available()?;
        lock(&self.state).attempts.insert(
            (key.delivery_id(), attempt),
            AttemptRecord {
                attempt,
                started_at: at,
                finished_at: None,
                result: None,
                detail: None,
            },
        );
        Ok(())
    }

    async fn record_attempt_finished(
        &self,
        key: &IdempotencyKey,
        attempt: u32,
        result: AttemptResult,
        detail: &str,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        self.check_available()?;
        self.check_storable(&[("detail", Some(detail))])?;
        if let Some(record) = lock(&self.state).attempts.get_mut(&(key.delivery_id(), attempt)) {
            record.finished_at = Some(at);
            record.result = Some(result);
            record.detail = Some(detail.to_owned());
        }
        Ok(())
    }

    async fn record_attempt_finished_and_outcome(
        &self,
        key: &IdempotencyKey,
        end: AttemptEnd<'_>,
        outcome: &Outcome,
        subject: Option<&Subject>,
        at: DateTime<Utc>,
    ) -> Result<RecordOutcome, StoreError> {
        // Refused as a whole, before either part, as PostgreSQL's one transaction is; outages
        // still count the two calls, as before.
        self.check_storable(&[
            ("detail", Some(end.detail)),
            ("reason", outcome.reason()),
            ("provider_message_id", outcome.provider_message_id()),
            ("subject", subject.map(Subject::as_str)),
        ])?;
        self.record_attempt_finished(key, end.attempt, end.result, end.detail, at).await?;
        self.record_outcome(key, outcome, subject, at).await
    }

    async fn record_unkeyed_rejection(
        &self,
        rejection: &UnkeyedRejection,
    ) -> Result<(), StoreError> {
        self.check_available()?;
        self.check_storable(&[("reason", Some(&rejection.reason))])?;
        let mut state = lock(&self.state);
        state
            .unkeyed
            .entry(rejection.raw_body.sha256.clone())
            .and_modify(|r| {
                r.times_seen += 1;
                r.last_seen_at = rejection.now;
            })
            .or_insert_with(|| UnkeyedRejectionRecord {
                body_sha256: rejection.raw_body.sha256.clone(),
                tenant: rejection.tenant.as_ref().map(ToString::to_string),
                reason: rejection.reason.clone(),
                raw_body: rejection.raw_body.kept.clone(),
                body_size: rejection.raw_body.original_len as u64,
                times_seen: 1,
                first_seen_at: rejection.now,
                last_seen_at: rejection.now,
            });
        Ok(())
    }

    async fn delivery(
        &self,
        id: DeliveryId,
        tenants: Option<&[TenantId]>,
    ) -> Result<Option<DeliveryRecord>, StoreError> {
        self.check_available()?;
        let state = lock(&self.state);
        Ok(state
            .deliveries
            .get(&id)
            .filter(|r| tenants.is_none_or(|t| t.contains(&r.tenant)))
            .cloned())
    }

    async fn attempts(
        &self,
        tenant: &TenantId,
        id: DeliveryId,
    ) -> Result<Vec<AttemptRecord>, StoreError> {
        self.check_available()?;
        let state = lock(&self.state);
        if state.deliveries.get(&id).is_none_or(|r| &r.tenant != tenant) {
            return Ok(Vec::new());
        }
        Ok(state.attempts.range((id, 0)..=(id, u32::MAX)).map(|(_, a)| a.clone()).collect())
    }

    async fn deliveries(&self, query: &DeliveryQuery) -> Result<DeliveryPage, StoreError> {
        self.check_available()?;
        let state = lock(&self.state);
        let limit = query.limit.clamp(1, 500) as usize;
        let mut rows: Vec<&DeliveryRecord> = state
            .deliveries
            .values()
            .filter(|r| query.tenants.as_ref().is_none_or(|t| t.contains(&r.tenant)))
            .filter(|r| query.status.is_none_or(|s| s == r.status))
            .filter(|r| {
                query
                    .after
                    .as_ref()
                    .is_none_or(|c| (r.created_at, r.delivery_id) < (c.created_at, c.delivery_id))
            })
            .collect();
        rows.sort_by_key(|r| std::cmp::Reverse((r.created_at, r.delivery_id)));
        let deliveries: Vec<DeliveryRecord> = rows.into_iter().take(limit).cloned().collect();
        let next = (deliveries.len() == limit).then(|| {
            let last = &deliveries[limit - 1];
            DeliveryCursor { created_at: last.created_at, delivery_id: last.delivery_id }
        });
        Ok(DeliveryPage { deliveries, next })
    }

    async fn unkeyed_rejections(
        &self,
        limit: u32,
    ) -> Result<Vec<UnkeyedRejectionRecord>, StoreError> {
        self.check_available()?;
        let state = lock(&self.state);
        let mut rows: Vec<_> = state.unkeyed.values().cloned().collect();
        rows.sort_by_key(|r| std::cmp::Reverse(r.last_seen_at));
        rows.truncate(limit as usize);
        Ok(rows)
    }
}

/// A shared pause list that pauses one tenant, with a reason.
#[derive(Debug, Clone)]
pub struct FakePauseList {
    tenant: TenantId,
    reason: String,
}

impl FakePauseList {
    /// Pauses `tenant` (a valid id) for `reason`; every other tenant sends.
    pub fn pausing(tenant: &str, reason: &str) -> Self {
        Self { tenant: TenantId::parse(tenant).expect("a valid tenant id"), reason: reason.into() }
    }
}

#[async_trait]
impl TenantPauseList for FakePauseList {
    async fn pause_reason(&self, tenant: &TenantId) -> Result<Option<String>, StoreError> {
        Ok((tenant == &self.tenant).then(|| self.reason.clone()))
    }
}

/// Operator pauses and the events they hold, in memory, the way the PostgreSQL store keeps both:
/// held events of a tenant are leased only while it is not paused.
#[derive(Debug, Default)]
pub struct FakeHeldEvents {
    paused: Mutex<HashMap<TenantId, String>>,
    held: Mutex<HashMap<IdempotencyKey, FakeHold>>,
}

#[derive(Debug, Clone)]
struct FakeHold {
    event: HeldEvent,
    lease: i64,
    leased_until: Option<DateTime<Utc>>,
}

impl FakeHeldEvents {
    /// Pauses `tenant` (a valid id) for `reason`.
    pub fn pause(&self, tenant: &str, reason: &str) {
        let tenant = TenantId::parse(tenant).expect("a valid tenant id");
        lock(&self.paused).insert(tenant, reason.into());
    }

    /// Resumes `tenant`.
    pub fn resume(&self, tenant: &str) {
        lock(&self.paused).retain(|paused, _| paused.as_str() != tenant);
    }

    fn lease(
        &self,
        of: impl Fn(&HeldEntry) -> bool,
        limit: u32,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
    ) -> Vec<LeasedEvent> {
        let mut held = lock(&self.held);
        let mut free: Vec<_> = held
            .values_mut()
            .filter(|h| of(&h.event.entry))
            .filter(|h| h.leased_until.is_none_or(|until| until <= now))
            .collect();
        free.sort_by_key(|h| h.event.entry.held_at);
        free.into_iter()
            .take(limit as usize)
            .map(|h| {
                h.lease += 1;
                h.leased_until = Some(lease_until);
                LeasedEvent { event: h.event.clone(), lease: h.lease }
            })
            .collect()
    }

    /// The events held now, oldest first.
    pub fn held(&self) -> Vec<HeldEvent> {
        let mut held: Vec<_> = lock(&self.held).values().map(|h| h.event.clone()).collect();
        held.sort_by_key(|event| event.entry.held_at);
        held
    }
}

#[async_trait]
impl TenantPauseList for FakeHeldEvents {
    async fn pause_reason(&self, tenant: &TenantId) -> Result<Option<String>, StoreError> {
        Ok(lock(&self.paused).get(tenant).cloned())
    }
}

#[async_trait]
impl HeldEvents for FakeHeldEvents {
    async fn hold(&self, event: &HeldEvent) -> Result<(), StoreError> {
        let mut held = lock(&self.held);
        let hold = held.entry(event.entry.key.clone()).or_insert_with(|| FakeHold {
            event: event.clone(),
            lease: 0,
            leased_until: None,
        });
        // As the PostgreSQL store does: the first place in line, the highest receive count.
        let (held_at, receive_count) = (hold.event.entry.held_at, hold.event.entry.receive_count);
        hold.event = event.clone();
        hold.event.entry.held_at = held_at;
        hold.event.entry.receive_count = receive_count.max(event.entry.receive_count);
        hold.leased_until = None;
        Ok(())
    }

    async fn lease_released(
        &self,
        limit: u32,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
    ) -> Result<Vec<LeasedEvent>, StoreError> {
        let paused = lock(&self.paused).clone();
        Ok(self.lease(|entry| !paused.contains_key(&entry.key.tenant), limit, now, lease_until))
    }

    async fn lease_of_tenant(
        &self,
        tenant: &TenantId,
        event_type: Option<&EventType>,
        limit: u32,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
    ) -> Result<Vec<LeasedEvent>, StoreError> {
        let wanted = |entry: &HeldEntry| {
            &entry.key.tenant == tenant && event_type.is_none_or(|t| &entry.event_type == t)
        };
        Ok(self.lease(wanted, limit, now, lease_until))
    }

    async fn held_summary(&self, tenant: &TenantId, limit: u32) -> Result<HeldSummary, StoreError> {
        let mut entries: Vec<_> = self
            .held()
            .into_iter()
            .map(|event| event.entry)
            .filter(|entry| &entry.key.tenant == tenant)
            .collect();
        let mut by_type: BTreeMap<EventType, (u64, DateTime<Utc>)> = BTreeMap::new();
        for entry in &entries {
            let count = by_type.entry(entry.event_type.clone()).or_insert((0, entry.held_at));
            count.0 += 1;
            count.1 = count.1.min(entry.held_at);
        }
        entries.truncate(limit as usize);
        Ok(HeldSummary {
            by_event_type: by_type.into_iter().map(|(t, (n, oldest))| (t, n, oldest)).collect(),
            oldest: entries,
        })
    }

    async fn holdings(&self) -> Result<Vec<TenantHolding>, StoreError> {
        let mut holdings: BTreeMap<TenantId, TenantHolding> = BTreeMap::new();
        let empty = |tenant: &TenantId| TenantHolding {
            tenant: tenant.clone(),
            paused: false,
            held_events: 0,
            oldest_held_at: None,
        };
        for tenant in lock(&self.paused).keys() {
            holdings.entry(tenant.clone()).or_insert_with(|| empty(tenant)).paused = true;
        }
        for HeldEvent { entry, .. } in self.held() {
            let holding = holdings
                .entry(entry.key.tenant.clone())
                .or_insert_with(|| empty(&entry.key.tenant));
            holding.held_events += 1;
            holding.oldest_held_at = Some(
                holding.oldest_held_at.map_or(entry.held_at, |oldest| oldest.min(entry.held_at)),
            );
        }
        Ok(holdings.into_values().collect())
    }

    async fn forget(&self, key: &IdempotencyKey, lease: i64) -> Result<bool, StoreError> {
        let mut held = lock(&self.held);
        let leased = held.get(key).is_some_and(|h| h.lease == lease && h.leased_until.is_some());
        if leased {
            held.remove(key);
        }
        Ok(leased)
    }
}

/// A dead-letter queue in memory: messages to look at, a redrive that moves them to
/// [`redriven`](Self::redriven), and a switch to make it unreachable.
#[derive(Debug, Default)]
pub struct FakeDeadLetters {
    messages: Mutex<Vec<DeadLetterMessage>>,
    redriven: Mutex<Vec<DeadLetterMessage>>,
    unreachable: Mutex<bool>,
    stop_after: Mutex<Option<u64>>,
}

impl FakeDeadLetters {
    /// Adds a message with this body, first sent at `sent_at`.
    pub fn add(&self, message_id: &str, body: &[u8], sent_at: DateTime<Utc>) {
        lock(&self.messages).push(DeadLetterMessage {
            message_id: message_id.into(),
            sent_at: Some(sent_at),
            receive_count: 3,
            body: body.to_vec(),
        });
    }

    /// Messages moved back to the events queue so far.
    pub fn redriven(&self) -> Vec<DeadLetterMessage> {
        lock(&self.redriven).clone()
    }

    /// Makes every call fail (or work again).
    pub fn set_unreachable(&self, unreachable: bool) {
        *lock(&self.unreachable) = unreachable;
    }

    /// Makes the next redrives stop after moving `moved` messages, as when SQS fails part way.
    pub fn stop_redrives_after(&self, moved: u64) {
        *lock(&self.stop_after) = Some(moved);
    }

    fn reachable(&self) -> Result<(), DeadLetterError> {
        match *lock(&self.unreachable) {
            true => Err(DeadLetterError::Unavailable("connection refused".into())),
            false => Ok(()),
        }
    }
}

#[async_trait]
impl DeadLetters for FakeDeadLetters {
    async fn depth(&self) -> Result<DeadLetterDepth, DeadLetterError> {
        self.reachable()?;
        let visible = lock(&self.messages).len() as u64;
        Ok(DeadLetterDepth { queue: "events-dlq".into(), visible, in_flight: 0 })
    }

    async fn peek(&self, limit: u32) -> Result<Vec<DeadLetterMessage>, DeadLetterError> {
        self.reachable()?;
        Ok(lock(&self.messages).iter().take(limit as usize).cloned().collect())
    }

    async fn redrive(&self, max: u64) -> Result<u64, DeadLetterError> {
        self.reachable()?;
        let mut messages = lock(&self.messages);
        let stop_after = *lock(&self.stop_after);
        let taken = messages.len().min(max.min(stop_after.unwrap_or(max)) as usize);
        let moved: Vec<_> = messages.drain(..taken).collect();
        let count = moved.len() as u64;
        lock(&self.redriven).extend(moved);
        match stop_after {
            Some(_) if !messages.is_empty() && count < max => {
                Err(DeadLetterError::RedriveStopped {
                    moved: count,
                    reason: "sending: throttled".into(),
                })
            }
            _ => Ok(count),
        }
    }
}
