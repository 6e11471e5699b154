//! Timing wrappers around the ports the use case calls, for the breakdown run only: each call
//! is delegated unchanged to the real adapter and its start and end are noted per delivery, so
//! the report can say where an event's time goes (claim, render, attempt rows, send, outcome).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use tayori_app::ports::{
    AttemptEnd, AttemptRecord, AttemptResult, Claim, ClaimRequest, DeliveryPage, DeliveryQuery,
    DeliveryRecord, DeliveryStore, EmailSender, RecordOutcome, RenderError, RenderedEmail,
    SendError, SentEmail, StoreError, TemplateRenderer, TenantProfile, UnkeyedRejection,
    UnkeyedRejectionRecord,
};
use tayori_domain::{
    DeliveryId, Event, EventType, IdempotencyKey, Outcome, OutgoingEmail, Subject, TenantId,
};

use crate::events::delivery_tag;

/// A step of the use case, as seen through its ports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Step {
    /// `DeliveryStore::claim` (an outcome without a send).
    Claim,
    /// `DeliveryStore::claim_and_start_attempt` (an email ready to send).
    ClaimToSend,
    /// `DeliveryStore::attempts` (only after a takeover).
    Attempts,
    /// `TemplateRenderer::render`.
    Render,
    /// `DeliveryStore::record_attempt_started` (only after a takeover or a retry).
    AttemptStarted,
    /// `EmailSender::send`: MIME, rate limiter, the SDK call.
    Send,
    /// `DeliveryStore::record_attempt_finished` (after a transient error).
    AttemptFinished,
    /// `DeliveryStore::record_outcome` (an outcome without a send).
    Outcome,
    /// `DeliveryStore::record_attempt_finished_and_outcome` (after a send that decides).
    AttemptFinishedAndOutcome,
    /// Any other store call (release, duplicates).
    OtherStore,
}

impl Step {
    /// Every step, in the order the use case takes them.
    pub const ALL: [Step; 10] = [
        Step::Render,
        Step::Claim,
        Step::ClaimToSend,
        Step::Attempts,
        Step::AttemptStarted,
        Step::Send,
        Step::AttemptFinished,
        Step::Outcome,
        Step::AttemptFinishedAndOutcome,
        Step::OtherStore,
    ];

    /// The name in the report.
    pub fn name(self) -> &'static str {
        match self {
            Step::Claim => "claim",
            Step::ClaimToSend => "claim_and_start_attempt",
            Step::Attempts => "attempts (takeover)",
            Step::Render => "render",
            Step::AttemptStarted => "record_attempt_started",
            Step::Send => "send (SES sender)",
            Step::AttemptFinished => "record_attempt_finished",
            Step::Outcome => "record_outcome",
            Step::AttemptFinishedAndOutcome => "record_attempt_finished_and_outcome",
            Step::OtherStore => "other store calls",
        }
    }
}

/// Start and end of each step, by the delivery's tag.
pub type Spans = HashMap<String, Vec<(Step, Instant, Instant)>>;

/// Start and end of each step of each delivery, keyed by the delivery's tag.
#[derive(Debug, Default)]
pub struct Timings {
    spans: Mutex<Spans>,
}

impl Timings {
    fn note(&self, delivery: String, step: Step, start: Instant) {
        let end = Instant::now();
        let mut spans = self.spans.lock().unwrap_or_else(PoisonError::into_inner);
        spans.entry(delivery).or_default().push((step, start, end));
    }

    /// Everything noted, handed over.
    pub fn take(&self) -> Spans {
        std::mem::take(&mut *self.spans.lock().unwrap_or_else(PoisonError::into_inner))
    }
}

fn key_tag(key: &IdempotencyKey) -> String {
    delivery_tag(key.delivery_id())
}

/// A [`DeliveryStore`] that times every call of the store it wraps.
pub struct TimedStore {
    /// The real store.
    pub inner: Arc<dyn DeliveryStore>,
    /// Where the times go.
    pub timings: Arc<Timings>,
}

#[async_trait]
impl DeliveryStore for TimedStore {
    async fn claim(&self, request: &ClaimRequest) -> Result<Claim, StoreError> {
        let start = Instant::now();
        let result = self.inner.claim(request).await;
        self.timings.note(key_tag(&request.key), Step::Claim, start);
        result
    }

    async fn claim_and_start_attempt(&self, request: &ClaimRequest) -> Result<Claim, StoreError> {
        let start = Instant::now();
        let result = self.inner.claim_and_start_attempt(request).await;
        self.timings.note(key_tag(&request.key), Step::ClaimToSend, start);
        result
    }

    async fn release(&self, key: &IdempotencyKey, at: DateTime<Utc>) -> Result<(), StoreError> {
        let start = Instant::now();
        let result = self.inner.release(key, at).await;
        self.timings.note(key_tag(key), Step::OtherStore, start);
        result
    }

    async fn record_outcome(
        &self,
        key: &IdempotencyKey,
        outcome: &Outcome,
        subject: Option<&Subject>,
        at: DateTime<Utc>,
    ) -> Result<RecordOutcome, StoreError> {
        let start = Instant::now();
        let result = self.inner.record_outcome(key, outcome, subject, at).await;
        self.timings.note(key_tag(key), Step::Outcome, start);
        result
    }

    async fn record_duplicate(
        &self,
        key: &IdempotencyKey,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let start = Instant::now();
        let result = self.inner.record_duplicate(key, at).await;
        self.timings.note(key_tag(key), Step::OtherStore, start);
        result
    }

    async fn record_attempt_started(
        &self,
        key: &IdempotencyKey,
        attempt: u32,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let start = Instant::now();
        let result = self.inner.record_attempt_started(key, attempt, at).await;
        self.timings.note(key_tag(key), Step::AttemptStarted, start);
        result
    }

    async fn record_attempt_finished(
        &self,
        key: &IdempotencyKey,
        attempt: u32,
        result: AttemptResult,
        detail: &str,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let start = Instant::now();
        let outcome = self.inner.record_attempt_finished(key, attempt, result, detail, at).await;
        self.timings.note(key_tag(key), Step::AttemptFinished, start);
        outcome
    }

    async fn record_attempt_finished_and_outcome(
        &self,
        key: &IdempotencyKey,
        end: AttemptEnd<'_>,
        outcome: &Outcome,
        subject: Option<&Subject>,
        at: DateTime<Utc>,
    ) -> Result<RecordOutcome, StoreError> {
        let start = Instant::now();
        let result =
            self.inner.record_attempt_finished_and_outcome(key, end, outcome, subject, at).await;
        self.timings.note(key_tag(key), Step::AttemptFinishedAndOutcome, start);
        result
    }

    async fn record_unkeyed_rejection(
        &self,
        rejection: &UnkeyedRejection,
    ) -> Result<(), StoreError> {
        self.inner.record_unkeyed_rejection(rejection).await
    }

    async fn delivery(
        &self,
        id: DeliveryId,
        tenants: Option<&[TenantId]>,
    ) -> Result<Option<DeliveryRecord>, StoreError> {
        self.inner.delivery(id, tenants).await
    }

    async fn attempts(
        &self,
        tenant: &TenantId,
        id: DeliveryId,
    ) -> Result<Vec<AttemptRecord>, StoreError> {
        let start = Instant::now();
        let result = self.inner.attempts(tenant, id).await;
        self.timings.note(delivery_tag(id), Step::Attempts, start);
        result
    }

    async fn deliveries(&self, query: &DeliveryQuery) -> Result<DeliveryPage, StoreError> {
        self.inner.deliveries(query).await
    }

    async fn unkeyed_rejections(
        &self,
        limit: u32,
    ) -> Result<Vec<UnkeyedRejectionRecord>, StoreError> {
        self.inner.unkeyed_rejections(limit).await
    }
}

/// An [`EmailSender`] that times the sender it wraps.
pub struct TimedSender {
    /// The real sender.
    pub inner: Arc<dyn EmailSender>,
    /// Where the times go.
    pub timings: Arc<Timings>,
}

#[async_trait]
impl EmailSender for TimedSender {
    async fn send(&self, email: &OutgoingEmail) -> Result<SentEmail, SendError> {
        let start = Instant::now();
        let result = self.inner.send(email).await;
        self.timings.note(delivery_tag(email.delivery_id), Step::Send, start);
        result
    }
}

/// A [`TemplateRenderer`] that times the renderer it wraps.
pub struct TimedRenderer {
    /// The real renderer.
    pub inner: Arc<dyn TemplateRenderer>,
    /// Where the times go.
    pub timings: Arc<Timings>,
}

impl TemplateRenderer for TimedRenderer {
    fn render(&self, tenant: &TenantProfile, event: &Event) -> Result<RenderedEmail, RenderError> {
        let start = Instant::now();
        let result = self.inner.render(tenant, event);
        self.timings.note(key_tag(&event.key), Step::Render, start);
        result
    }

    fn sensitive_variables(&self, tenant: &TenantId, event_type: &EventType) -> Vec<String> {
        self.inner.sensitive_variables(tenant, event_type)
    }

    fn message_class(
        &self,
        tenant: &TenantId,
        event_type: &EventType,
    ) -> tayori_app::ports::MessageClass {
        self.inner.message_class(tenant, event_type)
    }
}
