//! The handle-event use case against in-memory fakes of every port: every outcome of the
//! contract, duplicates, leases, transient failures and store outages.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is the failure report

use std::sync::Arc;
use std::time::Duration;

use futures::executor::block_on;
use serde_json::{Value, json};
use tayori_app::ports::{AttemptResult, DeliveryStore, SendError};
use tayori_app::testing::{
    FakeRenderer, FakeSuppressions, FakeTenants, InMemoryStore, ManualClock, RecordingSender,
    example_event,
};
use tayori_app::{DeliveryPolicy, EventHandler, Handled, InboundMessage};
use tayori_domain::{DeliveryId, DeliveryStatus, Outcome};
use tayori_domain::{Publisher, PublisherRules};

struct World {
    store: Arc<InMemoryStore>,
    sender: Arc<RecordingSender>,
    suppressions: Arc<FakeSuppressions>,
    clock: Arc<ManualClock>,
    handler: EventHandler,
}

fn world_with(sender: RecordingSender, policy: DeliveryPolicy) -> World {
    let store = Arc::new(InMemoryStore::default());
    let sender = Arc::new(sender);
    let suppressions = Arc::new(FakeSuppressions::default());
    let clock = Arc::new(ManualClock::new());
    let handler = EventHandler {
        store: store.clone(),
        tenants: Arc::new(FakeTenants::with(&["acme-invest", "acme-bank"])),
        suppressions: suppressions.clone(),
        renderer: Arc::new(FakeRenderer::knowing(&["account.deposit_completed"])),
        sender: sender.clone(),
        clock: clock.clone(),
        policy,
        worker_id: "test-worker".into(),
        pauses: Default::default(),
    };
    World { store, sender, suppressions, clock, handler }
}

fn world() -> World {
    world_with(RecordingSender::default(), DeliveryPolicy::default())
}

fn message(value: &Value) -> InboundMessage {
    InboundMessage::first(value.to_string().into_bytes())
}

fn status_of(world: &World, id: DeliveryId) -> DeliveryStatus {
    block_on(world.store.delivery(id, None)).unwrap().unwrap().status
}

/// Claims the example event's key for 120 s through the store alone, as a worker would have
/// before it died.
fn claim_as_a_worker_that_died(w: &World) -> tayori_domain::IdempotencyKey {
    let event = tayori_domain::decode_message_body(example_event().to_string().as_bytes()).unwrap();
    let request = tayori_app::ports::ClaimRequest {
        key: event.key.clone(),
        event_type: None,
        recipient: None,
        event_json: None,
        raw_body: None,
        owner: "dead-worker".into(),
        receive_count: 1,
        lease: Duration::from_secs(120),
        now: tayori_app::ports::Clock::now(&*w.clock),
    };
    block_on(w.store.claim(&request)).unwrap();
    event.key
}

#[test]
fn a_valid_event_is_sent_once_and_recorded() {
    let w = world();
    let handled = block_on(w.handler.handle(&message(&example_event()))).unwrap();
    let Handled::Decided { delivery_id, outcome: Outcome::Sent { provider_message_id } } = handled
    else {
        panic!("expected sent, got {handled:?}");
    };
    let sent = w.sender.sent();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].to.address.as_str(), "taro.yamada@example.com");
    assert_eq!(sent[0].to.name.as_ref().unwrap().as_str(), "山田 太郎");
    assert_eq!(sent[0].from.address.as_str(), "no-reply@acme-invest.example");
    assert_eq!(sent[0].delivery_id, delivery_id);

    let record = block_on(w.store.delivery(delivery_id, None)).unwrap().unwrap();
    assert_eq!(record.status, DeliveryStatus::Sent);
    assert_eq!(record.provider_message_id, Some(provider_message_id));
    assert_eq!(record.subject.as_deref(), Some(sent[0].subject.as_str()));
    let attempts = block_on(w.store.attempts(&record.tenant, delivery_id)).unwrap();
    assert_eq!(attempts.len(), 1);
    assert_eq!(attempts[0].result, Some(AttemptResult::Accepted));
}

#[test]
fn a_redelivered_event_is_not_sent_again_and_is_counted() {
    let w = world();
    block_on(w.handler.handle(&message(&example_event()))).unwrap();
    for _ in 0..3 {
        let handled = block_on(w.handler.handle(&message(&example_event()))).unwrap();
        assert!(
            matches!(handled, Handled::Duplicate { status: DeliveryStatus::Sent, .. }),
            "{handled:?}"
        );
    }
    assert_eq!(w.sender.sent().len(), 1);
    let id = w.sender.sent()[0].delivery_id;
    assert_eq!(block_on(w.store.delivery(id, None)).unwrap().unwrap().duplicate_count, 3);
}

#[test]
fn the_same_id_from_another_source_is_another_event() {
    let w = world();
    let mut other = example_event();
    other["source"] = json!("acme-invest/payments");
    block_on(w.handler.handle(&message(&example_event()))).unwrap();
    block_on(w.handler.handle(&message(&other))).unwrap();
    assert_eq!(w.sender.sent().len(), 2);
}

#[test]
fn a_body_that_is_not_json_is_kept_as_an_unkeyed_rejection() {
    let w = world();
    let handled =
        block_on(w.handler.handle(&InboundMessage::first(b"{\"oops\": ".to_vec()))).unwrap();
    let Handled::RejectedWithoutKey { reason } = handled else { panic!("{handled:?}") };
    assert!(reason.contains("not valid JSON"), "{reason}");
    let kept = block_on(w.store.unkeyed_rejections(10)).unwrap();
    assert_eq!(kept.len(), 1);
    assert_eq!(kept[0].raw_body, b"{\"oops\": ");
    assert!(w.sender.sent().is_empty());
}

#[test]
fn a_contract_violation_with_a_key_is_rejected_against_that_key_with_its_raw_body() {
    let w = world();
    let mut bad = example_event();
    bad["data"]["to"]["email"] = json!("Taro <taro@example.com>");
    let handled = block_on(w.handler.handle(&message(&bad))).unwrap();
    let Handled::Decided { delivery_id, outcome: Outcome::Rejected { reason } } = handled else {
        panic!("{handled:?}")
    };
    assert!(reason.starts_with("data.to.email:"), "{reason}");
    let record = block_on(w.store.delivery(delivery_id, None)).unwrap().unwrap();
    assert_eq!(record.raw_body.as_deref(), Some(bad.to_string().as_bytes()));
    assert_eq!(record.event_type.as_deref(), Some("account.deposit_completed"));

    // The same bad message again is a duplicate of the rejection, not a second rejection.
    let again = block_on(w.handler.handle(&message(&bad))).unwrap();
    assert!(matches!(again, Handled::Duplicate { status: DeliveryStatus::Rejected, .. }));
    assert!(w.sender.sent().is_empty());
}

#[test]
fn an_unknown_tenant_is_rejected_with_the_reason() {
    let w = world();
    let mut event = example_event();
    event["tenant"] = json!("acme-unknown");
    let handled = block_on(w.handler.handle(&message(&event))).unwrap();
    let Handled::Decided { outcome: Outcome::Rejected { reason }, .. } = handled else {
        panic!("{handled:?}")
    };
    assert!(reason.contains("unknown tenant \"acme-unknown\""), "{reason}");
}

/// A world whose acme-invest accepts events only from `AROAINVEST` (any session) with sources
/// under `acme-invest/`; acme-bank is open.
fn world_with_bound_producers() -> World {
    let mut w = world();
    let mut invest = tayori_app::testing::tenant_profile("acme-invest");
    invest.publishers = PublisherRules {
        producers: Some(vec!["AROAINVEST".into()]),
        sources: Some(vec!["acme-invest/".into()]),
    };
    let bank = tayori_app::testing::tenant_profile("acme-bank");
    w.handler.tenants = Arc::new(FakeTenants::of(vec![invest, bank]));
    w
}

fn from_queue(value: &Value, sender: &str, group: Option<&str>) -> InboundMessage {
    InboundMessage {
        publisher: Some(Publisher {
            sender_id: Some(sender.into()),
            group_id: group.map(str::to_owned),
            trusted: false,
        }),
        ..message(value)
    }
}

#[test]
fn an_event_from_a_producer_the_tenant_does_not_list_is_refused_without_its_key() {
    let w = world_with_bound_producers();
    let forged = from_queue(&example_event(), "AROABANK:publisher", Some("acme-invest"));
    let handled = block_on(w.handler.handle(&forged)).unwrap();
    let Handled::RejectedWithoutKey { reason } = handled else { panic!("{handled:?}") };
    assert!(
        reason.contains("producer \"AROABANK:publisher\"") && reason.contains("acme-invest"),
        "{reason}"
    );
    let kept = block_on(w.store.unkeyed_rejections(10)).unwrap();
    assert_eq!(kept.len(), 1);
    assert_eq!(kept[0].tenant.as_deref(), Some("acme-invest"));
    assert_eq!(kept[0].reason, reason);
    assert!(w.sender.sent().is_empty());

    // The real producer's event with the same id is not a duplicate of the forgery: it is sent.
    let real = from_queue(&example_event(), "AROAINVEST:i-0abc", Some("acme-invest"));
    let handled = block_on(w.handler.handle(&real)).unwrap();
    assert!(
        matches!(handled, Handled::Decided { outcome: Outcome::Sent { .. }, .. }),
        "{handled:?}"
    );
    assert_eq!(w.sender.sent().len(), 1);
}

#[test]
fn a_source_outside_the_tenants_sources_or_reserved_by_tayori_is_refused() {
    let w = world_with_bound_producers();
    let mut elsewhere = example_event();
    elsewhere["source"] = json!("acme-bank/accounts");
    let handled = block_on(w.handler.handle(&from_queue(&elsewhere, "AROAINVEST:s", None)));
    let Ok(Handled::RejectedWithoutKey { reason }) = handled else { panic!("{handled:?}") };
    assert!(reason.contains("not one of tenant \"acme-invest\"'s sources"), "{reason}");

    // tayori's own sources, from a producer, even for a tenant that lists no producers.
    let mut resend = example_event();
    resend["tenant"] = json!("acme-bank");
    resend["source"] = json!("tayori:resend");
    let handled = block_on(w.handler.handle(&from_queue(&resend, "AIDAANY", None)));
    let Ok(Handled::RejectedWithoutKey { reason }) = handled else { panic!("{handled:?}") };
    assert!(reason.contains("reserved for tayori"), "{reason}");
    // The same body handed over by tayori itself (a resend) is sent.
    let handled = block_on(w.handler.handle(&message(&resend))).unwrap();
    assert!(
        matches!(handled, Handled::Decided { outcome: Outcome::Sent { .. }, .. }),
        "{handled:?}"
    );
    assert_eq!(w.sender.sent().len(), 1);
}

#[test]
fn a_group_id_naming_another_tenant_is_refused() {
    let w = world_with_bound_producers();
    let mut bank = example_event();
    bank["tenant"] = json!("acme-bank");
    for group in ["acme-invest", "acme-invest:acme-bank", "other"] {
        let handled = block_on(w.handler.handle(&from_queue(&bank, "AIDAANY", Some(group))));
        let Ok(Handled::RejectedWithoutKey { reason }) = handled else { panic!("{handled:?}") };
        assert!(reason.contains("MessageGroupId"), "{group}: {reason}");
    }
    let handled = block_on(w.handler.handle(&from_queue(&bank, "AIDAANY", Some("acme-bank:o-1"))));
    assert!(matches!(handled, Ok(Handled::Decided { outcome: Outcome::Sent { .. }, .. })));
    assert_eq!(w.sender.sent().len(), 1);
}

#[test]
fn an_event_type_without_template_is_rejected() {
    let w = world();
    let mut event = example_event();
    event["type"] = json!("account.closed");
    let handled = block_on(w.handler.handle(&message(&event))).unwrap();
    let Handled::Decided { outcome: Outcome::Rejected { reason }, .. } = handled else {
        panic!("{handled:?}")
    };
    assert_eq!(reason, "tenant acme-invest has no template for event type account.closed");
}

#[test]
fn a_template_error_on_this_data_is_rejected_never_sent_blank() {
    let w = world();
    let mut event = example_event();
    event["data"]["variables"]["fail"] = json!(true);
    let handled = block_on(w.handler.handle(&message(&event))).unwrap();
    let Handled::Decided { outcome: Outcome::Rejected { reason }, .. } = handled else {
        panic!("{handled:?}")
    };
    assert!(reason.contains("not found"), "{reason}");
    assert!(w.sender.sent().is_empty());
}

#[test]
fn a_suppressed_recipient_is_recorded_as_suppressed_and_not_sent() {
    let w = world();
    w.suppressions.suppress("acme-invest", "taro.yamada@example.com");
    let handled = block_on(w.handler.handle(&message(&example_event()))).unwrap();
    assert!(matches!(handled, Handled::Decided { outcome: Outcome::Suppressed { .. }, .. }));
    assert!(w.sender.sent().is_empty());
}

#[test]
fn an_unsubscribe_does_not_stop_transactional_mail() {
    // The fake renderer's event types are transactional (the default class).
    let w = world();
    w.suppressions.unsubscribe("acme-invest", "taro.yamada@example.com");
    let handled = block_on(w.handler.handle(&message(&example_event()))).unwrap();
    assert!(matches!(handled, Handled::Decided { outcome: Outcome::Sent { .. }, .. }));
    assert_eq!(w.sender.sent().len(), 1);
    assert_eq!(w.sender.sent()[0].list_unsubscribe, None, "no unsubscribe link configured");
}

#[test]
fn a_suppression_list_outage_is_retried_not_decided() {
    let w = world();
    w.suppressions.set_unavailable(true);
    let retry = block_on(w.handler.handle(&message(&example_event()))).unwrap_err();
    assert!(retry.reason.contains("unavailable"));
    // The check comes before the claim: nothing was claimed, so there is no lease to wait for.
    let id = retry.delivery_id.unwrap();
    assert!(block_on(w.store.delivery(id, None)).unwrap().is_none());
    w.suppressions.set_unavailable(false);
    let handled = block_on(w.handler.handle(&message(&example_event()))).unwrap();
    assert!(matches!(handled, Handled::Decided { outcome: Outcome::Sent { .. }, .. }));
}

#[test]
fn a_permanent_refusal_is_failed_with_the_reason() {
    let w = world_with(
        RecordingSender::failing_with(vec![SendError::Rejected {
            reason: "MessageRejected: Email address is not verified".into(),
        }]),
        DeliveryPolicy::default(),
    );
    let handled = block_on(w.handler.handle(&message(&example_event()))).unwrap();
    let Handled::Decided { delivery_id, outcome: Outcome::Failed { reason } } = handled else {
        panic!("{handled:?}")
    };
    assert!(reason.contains("not verified"), "{reason}");
    let record = block_on(w.store.delivery(delivery_id, None)).unwrap().unwrap();
    let attempts = block_on(w.store.attempts(&record.tenant, delivery_id)).unwrap();
    assert_eq!(attempts[0].result, Some(AttemptResult::PermanentError));
}

#[test]
fn throttling_is_retried_with_the_hint_and_then_sent() {
    let w = world_with(
        RecordingSender::failing_with(vec![SendError::Throttled {
            reason: "TooManyRequests".into(),
            retry_after: Some(Duration::from_secs(2)),
        }]),
        DeliveryPolicy::default(),
    );
    let retry = block_on(w.handler.handle(&message(&example_event()))).unwrap_err();
    assert_eq!(retry.retry_after, Some(Duration::from_secs(2)));
    let id = retry.delivery_id.unwrap();
    assert_eq!(status_of(&w, id), DeliveryStatus::Processing);

    // Within the hint, the tenant's events go back to the queue without a claim or an attempt;
    // another tenant's are sent.
    w.clock.advance(Duration::from_secs(1));
    let early = block_on(w.handler.handle(&message(&example_event()))).unwrap_err();
    assert!(early.reason.contains("throttled"), "{early:?}");
    assert_eq!(early.retry_after, Some(Duration::from_secs(1)));
    let mut bank = example_event();
    bank["tenant"] = json!("acme-bank");
    let handled = block_on(w.handler.handle(&message(&bank))).unwrap();
    assert!(matches!(handled, Handled::Decided { outcome: Outcome::Sent { .. }, .. }));

    // The lease was released, so the redelivery after the hint claims at once.
    w.clock.advance(Duration::from_secs(1));
    let handled = block_on(w.handler.handle(&message(&example_event()))).unwrap();
    assert!(matches!(handled, Handled::Decided { outcome: Outcome::Sent { .. }, .. }));
    let record = block_on(w.store.delivery(id, None)).unwrap().unwrap();
    let attempts = block_on(w.store.attempts(&record.tenant, id)).unwrap();
    let results: Vec<_> = attempts.iter().map(|a| a.result).collect();
    assert_eq!(results, [Some(AttemptResult::TransientError), Some(AttemptResult::Accepted)]);
}

#[test]
fn a_tenant_whose_sends_queue_under_its_send_rate_goes_back_to_the_queue_without_a_claim() {
    let w = world();
    let invest = tayori_domain::TenantId::parse("acme-invest").unwrap();
    w.sender.expect_wait(&invest, Duration::from_millis(4500));
    let retry = block_on(w.handler.handle(&message(&example_event()))).unwrap_err();
    assert_eq!(retry.retry_after, Some(Duration::from_millis(4500)));
    assert!(retry.reason.contains("under its send rate"), "{retry:?}");
    let id = retry.delivery_id.unwrap();
    assert!(block_on(w.store.delivery(id, None)).unwrap().is_none(), "nothing claimed");
    assert_eq!(w.sender.calls(), 0);
    // Another tenant is not held back; a wait of a moment is waited in the slot.
    let mut bank = example_event();
    bank["tenant"] = json!("acme-bank");
    assert!(block_on(w.handler.handle(&message(&bank))).is_ok());
    w.sender.expect_wait(&invest, Duration::from_millis(1800));
    let handled = block_on(w.handler.handle(&message(&example_event()))).unwrap();
    assert!(matches!(handled, Handled::Decided { outcome: Outcome::Sent { .. }, .. }));
}

#[test]
fn a_tenant_throttled_again_and_again_waits_longer_each_time_until_a_send_goes_through() {
    let throttled = || SendError::Throttled { reason: "TooManyRequests".into(), retry_after: None };
    let w = world_with(
        RecordingSender::failing_with(vec![throttled(), throttled(), throttled()]),
        DeliveryPolicy::default(),
    );
    // Each throttled send doubles the tenant's wait: 1 s, 2 s, 4 s.
    for expected in [1, 2, 4] {
        let first = block_on(w.handler.handle(&message(&example_event()))).unwrap_err();
        assert!(first.reason.contains("TooManyRequests"), "{first:?}");
        let held_back = block_on(w.handler.handle(&message(&example_event()))).unwrap_err();
        assert!(held_back.reason.contains("throttled; waiting"), "{held_back:?}");
        assert_eq!(held_back.retry_after, Some(Duration::from_secs(expected)));
        w.clock.advance(Duration::from_secs(expected));
    }
    // The fourth try is sent; the next throttle starts again at 1 s.
    let handled = block_on(w.handler.handle(&message(&example_event()))).unwrap();
    assert!(matches!(handled, Handled::Decided { outcome: Outcome::Sent { .. }, .. }));
    w.sender.fail_next(vec![throttled()]);
    let mut other = example_event();
    other["id"] = json!("after-recovery");
    assert!(block_on(w.handler.handle(&message(&other))).is_err());
    let held_back = block_on(w.handler.handle(&message(&other))).unwrap_err();
    assert_eq!(held_back.retry_after, Some(Duration::from_secs(1)));
}

#[test]
fn transient_errors_that_outlast_the_policy_end_in_failed() {
    let unavailable = || SendError::Unavailable { reason: "connection reset".into() };
    let w = world_with(
        RecordingSender::failing_with((0..5).map(|_| unavailable()).collect()),
        DeliveryPolicy { max_attempts: 3, ..DeliveryPolicy::default() },
    );
    assert!(block_on(w.handler.handle(&message(&example_event()))).is_err());
    assert!(block_on(w.handler.handle(&message(&example_event()))).is_err());
    let handled = block_on(w.handler.handle(&message(&example_event()))).unwrap();
    let Handled::Decided { outcome: Outcome::Failed { reason }, .. } = handled else {
        panic!("{handled:?}")
    };
    assert!(reason.starts_with("gave up after 3 attempts"), "{reason}");
    assert_eq!(w.sender.calls(), 3);
}

#[test]
fn an_unknown_send_result_is_not_resent_by_default() {
    let w = world_with(
        RecordingSender::failing_with(vec![SendError::Ambiguous {
            reason: "timed out after the request was sent".into(),
        }]),
        DeliveryPolicy::default(),
    );
    let handled = block_on(w.handler.handle(&message(&example_event()))).unwrap();
    let Handled::Decided { outcome: Outcome::Unknown { reason }, .. } = handled else {
        panic!("{handled:?}")
    };
    assert!(reason.contains("not resent automatically"), "{reason}");
    assert_eq!(w.sender.calls(), 1);
}

#[test]
fn an_unknown_send_result_is_retried_when_the_policy_allows() {
    let w = world_with(
        RecordingSender::failing_with(vec![SendError::Ambiguous { reason: "timeout".into() }]),
        DeliveryPolicy { resend_unknown: true, ..DeliveryPolicy::default() },
    );
    assert!(block_on(w.handler.handle(&message(&example_event()))).is_err());
    let handled = block_on(w.handler.handle(&message(&example_event()))).unwrap();
    assert!(matches!(handled, Handled::Decided { outcome: Outcome::Sent { .. }, .. }));
    assert_eq!(w.sender.sent().len(), 1);
}

#[test]
fn while_another_worker_holds_the_lease_the_message_waits_for_it() {
    let w = world();
    claim_as_a_worker_that_died(&w);

    let retry = block_on(w.handler.handle(&message(&example_event()))).unwrap_err();
    assert_eq!(retry.retry_after, Some(Duration::from_secs(5)), "look again soon");
    let mut fifth = message(&example_event());
    fifth.receive_count = 5;
    let retry = block_on(w.handler.handle(&fifth)).unwrap_err();
    assert_eq!(retry.retry_after, Some(Duration::from_secs(80)), "then less and less often");
    fifth.receive_count = 6;
    let retry = block_on(w.handler.handle(&fifth)).unwrap_err();
    assert_eq!(retry.retry_after, Some(Duration::from_secs(120)), "never past the lease's end");
    assert!(w.sender.sent().is_empty());

    // Once the lease has run out, the next delivery takes over and sends.
    w.clock.advance(Duration::from_secs(120));
    let handled = block_on(w.handler.handle(&message(&example_event()))).unwrap();
    assert!(matches!(handled, Handled::Decided { outcome: Outcome::Sent { .. }, .. }));
}

#[test]
fn a_worker_that_died_during_the_send_is_not_followed_by_a_second_send() {
    let w = world();
    let key = claim_as_a_worker_that_died(&w);
    let now = tayori_app::ports::Clock::now(&*w.clock);
    block_on(w.store.record_attempt_started(&key, 1, now)).unwrap();
    w.clock.advance(Duration::from_secs(121));

    let handled = block_on(w.handler.handle(&message(&example_event()))).unwrap();
    let Handled::Decided { outcome: Outcome::Unknown { reason }, delivery_id } = handled else {
        panic!("{handled:?}")
    };
    assert!(reason.contains("never finished"), "{reason}");
    assert!(w.sender.sent().is_empty(), "an email that may have gone out is not sent again");
    let attempts = block_on(w.store.attempts(&key.tenant, delivery_id)).unwrap();
    assert_eq!(attempts[0].result, Some(AttemptResult::Unknown));
}

#[test]
fn a_worker_that_died_after_the_send_was_accepted_is_recorded_as_sent_not_resent() {
    let w = world();
    let key = claim_as_a_worker_that_died(&w);
    let now = tayori_app::ports::Clock::now(&*w.clock);
    block_on(w.store.record_attempt_started(&key, 1, now)).unwrap();
    block_on(w.store.record_attempt_finished(&key, 1, AttemptResult::Accepted, "ses-0001", now))
        .unwrap();
    w.clock.advance(Duration::from_secs(121));

    let handled = block_on(w.handler.handle(&message(&example_event()))).unwrap();
    let Handled::Decided { outcome: Outcome::Sent { provider_message_id }, .. } = handled else {
        panic!("{handled:?}")
    };
    assert_eq!(provider_message_id, "ses-0001", "the earlier accepted send is the outcome");
    assert_eq!(w.sender.calls(), 0, "not sent again");
}

#[test]
fn a_worker_that_died_after_a_permanent_refusal_is_recorded_as_failed_not_retried() {
    let w = world();
    let key = claim_as_a_worker_that_died(&w);
    let now = tayori_app::ports::Clock::now(&*w.clock);
    block_on(w.store.record_attempt_started(&key, 1, now)).unwrap();
    let refusal = "rejected by sender: MessageRejected";
    block_on(w.store.record_attempt_finished(&key, 1, AttemptResult::PermanentError, refusal, now))
        .unwrap();
    w.clock.advance(Duration::from_secs(121));

    let handled = block_on(w.handler.handle(&message(&example_event()))).unwrap();
    let Handled::Decided { outcome: Outcome::Failed { reason }, .. } = handled else {
        panic!("{handled:?}")
    };
    assert_eq!(reason, refusal);
    assert_eq!(w.sender.calls(), 0);
}

#[test]
fn a_store_outage_before_the_send_is_retried_without_sending() {
    let w = world();
    w.store.fail_next(1);
    let retry = block_on(w.handler.handle(&message(&example_event()))).unwrap_err();
    assert!(retry.reason.contains("unavailable"), "{}", retry.reason);
    assert!(w.sender.sent().is_empty());
    let handled = block_on(w.handler.handle(&message(&example_event()))).unwrap();
    assert!(matches!(handled, Handled::Decided { outcome: Outcome::Sent { .. }, .. }));
}

#[test]
fn a_store_outage_between_the_claim_and_the_attempt_row_gives_the_lease_back() {
    let w = world();
    // The claim succeeds; the attempt row that must precede the send fails.
    w.store.fail_calls_after(1, 1);
    let retry = block_on(w.handler.handle(&message(&example_event()))).unwrap_err();
    assert!(retry.reason.contains("unavailable"), "{}", retry.reason);
    assert_eq!(w.sender.calls(), 0, "nothing is sent without its attempt row");

    // The redelivery claims at once (no lease to wait out), finds no earlier attempt and sends.
    let handled = block_on(w.handler.handle(&message(&example_event()))).unwrap();
    let Handled::Decided { delivery_id, outcome: Outcome::Sent { .. } } = handled else {
        panic!("{handled:?}")
    };
    assert_eq!(w.sender.calls(), 1);
    let record = block_on(w.store.delivery(delivery_id, None)).unwrap().unwrap();
    let attempts = block_on(w.store.attempts(&record.tenant, delivery_id)).unwrap();
    let numbers: Vec<_> = attempts.iter().map(|a| (a.attempt, a.result)).collect();
    assert_eq!(numbers, [(2, Some(AttemptResult::Accepted))]);
}

#[test]
fn a_short_store_outage_after_the_send_is_waited_out_so_the_send_is_recorded() {
    let w = world();
    let before = tayori_app::ports::Clock::now(&*w.clock);
    // The claim and its attempt row succeed; the next three calls (recording the result)
    // fail, which the policy's four waits absorb.
    w.store.fail_calls_after(2, 3);
    let handled = block_on(w.handler.handle(&message(&example_event()))).unwrap();
    let Handled::Decided { delivery_id, outcome: Outcome::Sent { .. } } = handled else {
        panic!("{handled:?}")
    };
    assert_eq!(w.sender.calls(), 1, "sent exactly once");
    assert_eq!(status_of(&w, delivery_id), DeliveryStatus::Sent);
    assert!(tayori_app::ports::Clock::now(&*w.clock) > before, "it waited between tries");
}

#[test]
fn a_long_store_outage_after_the_send_leaves_the_lease_so_nothing_is_resent() {
    let w = world();
    w.store.fail_calls_after(2, 100);
    let retry = block_on(w.handler.handle(&message(&example_event()))).unwrap_err();
    w.store.fail_calls_after(0, 0);
    // The redelivery finds the lease still held (it was not released after a possible send)...
    let again = block_on(w.handler.handle(&message(&example_event()))).unwrap_err();
    assert!(again.reason.contains("holds the lease"), "{}", again.reason);
    // ...and after it runs out, the unfinished attempt stops a second send.
    w.clock.advance(Duration::from_secs(300));
    let handled = block_on(w.handler.handle(&message(&example_event()))).unwrap();
    assert!(matches!(handled, Handled::Decided { outcome: Outcome::Unknown { .. }, .. }));
    assert_eq!(w.sender.calls(), 1);
    assert!(retry.delivery_id.is_some());
}

#[test]
fn sensitive_variables_are_sent_but_never_stored() {
    let w = world();
    let mut event = example_event();
    event["data"]["variables"]["otp"] = json!("493817");
    let handled = block_on(w.handler.handle(&message(&event))).unwrap();
    let Handled::Decided { delivery_id, .. } = handled else { panic!("{handled:?}") };
    let stored = block_on(w.store.delivery(delivery_id, None)).unwrap().unwrap();
    let copy: Value = serde_json::from_str(stored.event_json.as_deref().unwrap()).unwrap();
    assert_eq!(copy["data"]["variables"]["otp"], "***");
    assert_eq!(copy["data"]["variables"]["amount"], 50000, "other variables are kept");
    assert!(!stored.event_json.unwrap().contains("493817"));
}

#[test]
fn a_paused_tenant_waits_while_other_tenants_send() {
    let w = world_with(
        RecordingSender::failing_with(vec![SendError::Paused {
            reason: "SendingPausedException".into(),
            scope: tayori_app::ports::PauseScope::Tenant,
        }]),
        DeliveryPolicy::default(),
    );
    let retry = block_on(w.handler.handle(&message(&example_event()))).unwrap_err();
    assert_eq!(retry.retry_after, Some(Duration::from_secs(300)));

    // Another event of the paused tenant waits without calling the sender or using a claim.
    let mut second = example_event();
    second["id"] = json!("second");
    let waiting = block_on(w.handler.handle(&message(&second))).unwrap_err();
    assert!(waiting.reason.contains("paused"), "{}", waiting.reason);
    assert_eq!(w.sender.calls(), 1);
    let second_id = waiting.delivery_id.unwrap();
    assert!(block_on(w.store.delivery(second_id, None)).unwrap().is_none(), "not even claimed");

    // Another tenant goes on.
    let mut other = example_event();
    other["tenant"] = json!("acme-bank");
    let handled = block_on(w.handler.handle(&message(&other))).unwrap();
    assert!(matches!(handled, Handled::Decided { outcome: Outcome::Sent { .. }, .. }));

    // After the pause, the tenant sends again.
    w.clock.advance(Duration::from_secs(301));
    let handled = block_on(w.handler.handle(&message(&second))).unwrap();
    assert!(matches!(handled, Handled::Decided { outcome: Outcome::Sent { .. }, .. }));
}

#[test]
fn an_account_pause_stops_every_tenant() {
    let w = world_with(
        RecordingSender::failing_with(vec![SendError::Paused {
            reason: "AccountSuspendedException".into(),
            scope: tayori_app::ports::PauseScope::Account,
        }]),
        DeliveryPolicy::default(),
    );
    assert!(block_on(w.handler.handle(&message(&example_event()))).is_err());
    let mut other = example_event();
    other["tenant"] = json!("acme-bank");
    let waiting = block_on(w.handler.handle(&message(&other))).unwrap_err();
    assert!(waiting.reason.contains("paused"));
    assert_eq!(w.sender.calls(), 1);
}

#[test]
fn the_receive_count_is_recorded() {
    let w = world();
    let mut inbound = message(&example_event());
    inbound.receive_count = 4;
    let handled = block_on(w.handler.handle(&inbound)).unwrap();
    let Handled::Decided { delivery_id, .. } = handled else { panic!("{handled:?}") };
    assert_eq!(block_on(w.store.delivery(delivery_id, None)).unwrap().unwrap().receive_count, 4);
}

mod intake {
    use super::*;
    use std::sync::Mutex;

    use async_trait::async_trait;
    use tayori_app::ports::{EventQueue, QueueError};
    use tayori_app::{Accepted, EventIntake};

    #[derive(Default)]
    struct VecQueue(Mutex<Vec<Vec<u8>>>);

    #[async_trait]
    impl EventQueue for VecQueue {
        async fn publish(&self, body: Vec<u8>) -> Result<(), QueueError> {
            self.0.lock().unwrap().push(body);
            Ok(())
        }
    }

    #[test]
    fn a_valid_event_is_queued_with_its_delivery_id_and_a_bad_one_recorded() {
        let w = world();
        let queue = Arc::new(VecQueue::default());
        let intake = EventIntake { handler: Arc::new(w.handler), queue: queue.clone() };

        let body = example_event().to_string().into_bytes();
        let accepted = block_on(intake.accept(body.clone())).unwrap();
        let expected = tayori_domain::decode_message_body(&body).unwrap().key.delivery_id();
        assert_eq!(accepted, Accepted::Queued { delivery_id: expected });
        assert_eq!(queue.0.lock().unwrap().len(), 1);

        let mut bad = example_event();
        bad["specversion"] = json!("0.3");
        let rejected = block_on(intake.accept(bad.to_string().into_bytes())).unwrap();
        let Accepted::Rejected { reason, delivery_id: Some(id) } = rejected else {
            panic!("{rejected:?}")
        };
        assert!(reason.contains("specversion"), "{reason}");
        let record = block_on(w.store.delivery(id, None)).unwrap().unwrap();
        assert_eq!(record.status, DeliveryStatus::Rejected);
        assert_eq!(queue.0.lock().unwrap().len(), 1, "nothing bad was queued");

        let garbage = block_on(intake.accept(b"not json".to_vec())).unwrap();
        assert!(matches!(garbage, Accepted::Rejected { delivery_id: None, .. }));
        assert_eq!(block_on(w.store.unkeyed_rejections(10)).unwrap().len(), 1);
    }
}

#[test]
fn a_tenant_paused_by_the_reputation_guard_waits_without_claiming_or_sending() {
    let mut w = world();
    w.handler.pauses = tayori_app::handle_event::SendingPauses::with_shared(
        Arc::new(tayori_app::testing::FakePauseList::pausing(
            "acme-invest",
            "reputation guard: 9 % bounces",
        )),
        Duration::ZERO,
    );
    let retry = block_on(w.handler.handle(&message(&example_event()))).unwrap_err();
    assert!(retry.reason.contains("reputation guard"), "{retry:?}");
    assert_eq!(retry.retry_after, Some(DeliveryPolicy::default().pause_for));
    assert!(w.sender.sent().is_empty());
    let query = tayori_app::ports::DeliveryQuery { limit: 10, ..Default::default() };
    assert!(block_on(w.store.deliveries(&query)).unwrap().deliveries.is_empty(), "nothing claimed");

    // Another tenant is not held back.
    let mut bank = example_event();
    bank["tenant"] = json!("acme-bank");
    let handled = block_on(w.handler.handle(&message(&bank))).unwrap();
    assert!(matches!(handled, Handled::Decided { outcome: Outcome::Sent { .. }, .. }));
    assert_eq!(block_on(w.store.deliveries(&query)).unwrap().deliveries.len(), 1);
}

/// A shared pause list an operator changes, counting how often it is asked.
#[derive(Default)]
struct SwitchablePauses {
    paused: std::sync::Mutex<bool>,
    asked: std::sync::atomic::AtomicU32,
}

#[async_trait::async_trait]
impl tayori_app::ports::TenantPauseList for SwitchablePauses {
    async fn pause_reason(
        &self,
        _tenant: &tayori_domain::TenantId,
    ) -> Result<Option<String>, tayori_app::ports::StoreError> {
        self.asked.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Ok((*self.paused.lock().unwrap()).then(|| "reputation guard".to_owned()))
    }
}

#[test]
fn the_shared_pause_list_is_asked_once_per_tenant_and_second_and_a_change_shows_after_that() {
    let mut w = world();
    let list = Arc::new(SwitchablePauses::default());
    w.handler.pauses =
        tayori_app::handle_event::SendingPauses::with_shared(list.clone(), Duration::from_secs(1));
    let asked = || list.asked.load(std::sync::atomic::Ordering::Relaxed);
    let event = |id: &str| {
        let mut event = example_event();
        event["id"] = json!(id);
        message(&event)
    };

    assert!(block_on(w.handler.handle(&event("a"))).is_ok());
    assert!(block_on(w.handler.handle(&event("b"))).is_ok());
    assert_eq!(asked(), 1, "the second event used the first answer");

    // The guard pauses the tenant: within the second the old answer stands...
    *list.paused.lock().unwrap() = true;
    w.clock.advance(Duration::from_millis(500));
    assert!(block_on(w.handler.handle(&event("c"))).is_ok());
    assert_eq!(asked(), 1);
    // ...after it, the pause holds the next event back, without a claim.
    w.clock.advance(Duration::from_millis(600));
    let retry = block_on(w.handler.handle(&event("d"))).unwrap_err();
    assert!(retry.reason.contains("reputation guard"), "{retry:?}");
    assert_eq!(asked(), 2);
    assert_eq!(w.sender.calls(), 3);

    // Another tenant has its own answer.
    let mut bank = example_event();
    bank["tenant"] = json!("acme-bank");
    assert!(block_on(w.handler.handle(&message(&bank))).is_err(), "this list pauses every tenant");
    assert_eq!(asked(), 3);

    // A resume shows within a second too.
    *list.paused.lock().unwrap() = false;
    w.clock.advance(Duration::from_millis(1_100));
    assert!(block_on(w.handler.handle(&event("d"))).is_ok());
    assert_eq!(w.sender.calls(), 4);
}

/// A world whose shared pauses hold events in memory, with `tenant` paused for `reason`.
fn world_holding_paused(
    tenant: &str,
    reason: &str,
) -> (World, Arc<tayori_app::testing::FakeHeldEvents>) {
    let mut w = world();
    let pauses = Arc::new(tayori_app::testing::FakeHeldEvents::default());
    w.handler.pauses =
        tayori_app::handle_event::SendingPauses::with_shared(pauses.clone(), Duration::ZERO)
            .holding_in(pauses.clone());
    pauses.pause(tenant, reason);
    (w, pauses)
}

#[test]
fn a_paused_tenants_events_are_held_once_each_and_sent_after_the_resume() {
    use tayori_app::{ReleaseHeldEvents, ReleaseSettings, Released};
    let (w, pauses) = world_holding_paused("acme-invest", "bad template");
    let event = |id: &str| {
        let mut event = example_event();
        event["id"] = json!(id);
        event
    };

    // Held, not claimed, not sent; a redelivery of a held event keeps one copy.
    for id in ["a", "b", "a"] {
        w.clock.advance(Duration::from_secs(1));
        let handled = block_on(w.handler.handle(&message(&event(id)))).unwrap();
        let Handled::Held { reason, .. } = handled else { panic!("{handled:?}") };
        assert_eq!(reason, "bad template");
    }
    let held = pauses.held();
    assert_eq!(held.len(), 2, "{held:?}");
    assert_eq!(held[0].body, message(&event("a")).body);
    assert!(w.sender.sent().is_empty());
    let query = tayori_app::ports::DeliveryQuery { limit: 10, ..Default::default() };
    assert!(block_on(w.store.deliveries(&query)).unwrap().deliveries.is_empty(), "nothing claimed");

    // Another tenant is not held back.
    let mut bank = event("c");
    bank["tenant"] = json!("acme-bank");
    let handled = block_on(w.handler.handle(&message(&bank))).unwrap();
    assert!(matches!(handled, Handled::Decided { outcome: Outcome::Sent { .. }, .. }));

    // While the pause lasts, a release round hands nothing over.
    let handler = Arc::new(w.handler);
    let release = ReleaseHeldEvents {
        held: pauses.clone(),
        handler: handler.clone(),
        clock: w.clock.clone(),
        settings: ReleaseSettings { batch_size: 1, ..ReleaseSettings::default() },
    };
    assert_eq!(block_on(release.release_batch()).unwrap(), Released::default());

    // Resumed: each held event is sent once and forgotten, in batches of one; the run stops
    // when asked, after a round that found nothing.
    pauses.resume("acme-invest");
    let rounds = std::sync::atomic::AtomicU32::new(0);
    let stop_after_three = || rounds.fetch_add(1, std::sync::atomic::Ordering::Relaxed) >= 3;
    let released = block_on(release.run(&stop_after_three));
    assert_eq!(released, Released { decided: 2, held_again: 0, later: 0 });
    assert!(pauses.held().is_empty());
    assert_eq!(w.sender.sent().len(), 3, "a, b and acme-bank's c, once each");
    let delivered = block_on(w.store.deliveries(&query)).unwrap().deliveries;
    assert!(delivered.iter().all(|d| d.status == DeliveryStatus::Sent), "{delivered:?}");

    // A copy of a decided event held again is released as a duplicate: nothing sent again.
    pauses.pause("acme-invest", "again");
    assert!(matches!(block_on(handler.handle(&message(&event("a")))), Ok(Handled::Held { .. })));
    pauses.resume("acme-invest");
    assert_eq!(block_on(release.release_batch()).unwrap().decided, 1);
    assert_eq!(w.sender.sent().len(), 3);
    assert!(pauses.held().is_empty());
}

#[test]
fn a_held_event_whose_tenant_is_paused_again_mid_round_stays_held() {
    use tayori_app::ports::HeldEvents;
    use tayori_app::{ReleaseHeldEvents, ReleaseSettings, Released};
    let (w, pauses) = world_holding_paused("acme-invest", "bad template");
    assert!(matches!(
        block_on(w.handler.handle(&message(&example_event()))),
        Ok(Handled::Held { .. })
    ));
    // Leased by a round, then paused again before the event is handled: the handling holds it
    // again, which ends the lease, so that the round does not forget it.
    pauses.resume("acme-invest");
    let now = tayori_app::ports::Clock::now(&*w.clock);
    let leased = block_on(pauses.lease_released(10, now, now + chrono::Duration::minutes(5)));
    assert_eq!(leased.unwrap().len(), 1);
    pauses.pause("acme-invest", "paused again");
    let held = block_on(w.handler.handle(&message(&example_event()))).unwrap();
    assert!(matches!(held, Handled::Held { .. }));
    assert_eq!(pauses.held().len(), 1);
    // A round while it is paused hands it nothing; after the lease would have run out, the
    // resumed tenant's event goes out once.
    let release = ReleaseHeldEvents {
        held: pauses.clone(),
        handler: Arc::new(w.handler),
        clock: w.clock.clone(),
        settings: ReleaseSettings::default(),
    };
    assert_eq!(block_on(release.release_batch()).unwrap(), Released::default());
    pauses.resume("acme-invest");
    assert_eq!(block_on(release.release_batch()).unwrap().decided, 1);
    assert_eq!(w.sender.sent().len(), 1);
    assert!(pauses.held().is_empty());
}

#[test]
fn a_discarded_event_is_rejected_with_the_reason_once_and_never_sent() {
    let w = world();
    let discarded = block_on(w.handler.discard(&message(&example_event()), "wrong amounts"));
    let Ok(Handled::Decided { delivery_id, outcome: Outcome::Rejected { reason } }) = discarded
    else {
        panic!("{discarded:?}")
    };
    assert_eq!(reason, "wrong amounts");
    assert_eq!(status_of(&w, delivery_id), DeliveryStatus::Rejected);
    // A later copy, through the path or discarded again, is a duplicate: nothing is sent.
    let again = block_on(w.handler.handle(&message(&example_event()))).unwrap();
    assert!(matches!(again, Handled::Duplicate { status: DeliveryStatus::Rejected, .. }));
    let twice = block_on(w.handler.discard(&message(&example_event()), "again")).unwrap();
    assert!(matches!(twice, Handled::Duplicate { .. }), "{twice:?}");
    assert!(w.sender.sent().is_empty());

    // A sent event stays sent; a body that breaks the contract is rejected for that.
    let mut other = example_event();
    other["id"] = json!("sent-first");
    block_on(w.handler.handle(&message(&other))).unwrap();
    let sent = block_on(w.handler.discard(&message(&other), "too late")).unwrap();
    assert!(matches!(sent, Handled::Duplicate { status: DeliveryStatus::Sent, .. }), "{sent:?}");
    let mut broken = example_event();
    broken["id"] = json!("broken");
    broken["specversion"] = json!("0.3");
    let rejected = block_on(w.handler.discard(&message(&broken), "discarded")).unwrap();
    let Handled::Decided { outcome: Outcome::Rejected { reason }, .. } = rejected else {
        panic!("{rejected:?}")
    };
    assert!(reason.contains("specversion"), "{reason}");
    assert_eq!(w.sender.sent().len(), 1);
}

#[test]
fn an_id_with_a_control_character_is_refused_without_a_key_and_kept() {
    let w = world();
    let mut event = example_event();
    event["id"] = json!("01JD8Z6Q7K2V4X9M3N5P1R0T8W\u{0}");
    let handled = block_on(w.handler.handle(&message(&event))).unwrap();
    let Handled::RejectedWithoutKey { reason } = handled else { panic!("{handled:?}") };
    assert!(reason.starts_with("id: id must not contain control characters"), "{reason}");
    let kept = block_on(w.store.unkeyed_rejections(10)).unwrap();
    assert_eq!(kept.len(), 1);
    assert_eq!(kept[0].raw_body, event.to_string().into_bytes());
    assert!(w.sender.sent().is_empty());
}

#[test]
fn data_values_with_nul_are_sent_and_their_copy_kept_escaped() {
    let w = world();
    let mut event = example_event();
    event["data"]["variables"]["note"] = json!("a\u{0}b");
    event["data"]["to"]["name"] = Value::Null;
    event["subject"] = Value::Null;
    let handled = block_on(w.handler.handle(&message(&event))).unwrap();
    let Handled::Decided { delivery_id, outcome: Outcome::Sent { .. } } = handled else {
        panic!("{handled:?}")
    };
    assert_eq!(w.sender.sent()[0].to.name, None, "a null name is no name");
    let record = block_on(w.store.delivery(delivery_id, None)).unwrap().unwrap();
    let copy = record.event_json.unwrap();
    assert!(copy.contains(r#""note":"a\u0000b""#), "{copy}");
}

#[test]
fn a_claim_the_store_refuses_for_its_data_is_rejected_with_the_reason_not_retried() {
    let w = world();
    w.store.refuse_next_writes(1);
    let handled = block_on(w.handler.handle(&message(&example_event()))).unwrap();
    let Handled::Decided { delivery_id, outcome: Outcome::Rejected { reason } } = handled else {
        panic!("{handled:?}")
    };
    assert!(reason.contains("cannot keep this event as it is"), "{reason}");
    assert!(reason.contains("fake refusal"), "{reason}");
    let record = block_on(w.store.delivery(delivery_id, None)).unwrap().unwrap();
    assert_eq!(record.raw_body.as_deref(), Some(example_event().to_string().as_bytes()));
    assert_eq!(record.event_json, None, "only what the store keeps");
    assert!(w.sender.sent().is_empty());
    // Decided once: the next copy is a duplicate.
    let again = block_on(w.handler.handle(&message(&example_event()))).unwrap();
    assert!(matches!(again, Handled::Duplicate { status: DeliveryStatus::Rejected, .. }));
}

#[test]
fn a_key_the_store_refuses_altogether_ends_as_an_unkeyed_rejection() {
    let w = world();
    w.store.refuse_next_writes(2);
    let handled = block_on(w.handler.handle(&message(&example_event()))).unwrap();
    let Handled::RejectedWithoutKey { reason } = handled else { panic!("{handled:?}") };
    assert!(reason.contains("cannot keep this event as it is"), "{reason}");
    let kept = block_on(w.store.unkeyed_rejections(10)).unwrap();
    assert_eq!(kept.len(), 1);
    assert_eq!(kept[0].tenant.as_deref(), Some("acme-invest"));
    assert!(w.sender.sent().is_empty());
}

#[test]
fn a_send_result_the_store_refuses_for_its_text_is_recorded_escaped_not_retried() {
    let w = world_with(
        RecordingSender::failing_with(vec![SendError::Rejected { reason: "554 a\0b".into() }]),
        DeliveryPolicy::default(),
    );
    let before = tayori_app::ports::Clock::now(&*w.clock);
    let handled = block_on(w.handler.handle(&message(&example_event()))).unwrap();
    let Handled::Decided { delivery_id, outcome: Outcome::Failed { reason } } = handled else {
        panic!("{handled:?}")
    };
    assert!(reason.contains(r"554 a\u{0}b (stored with NUL escaped: "), "{reason}");
    assert!(!reason.contains('\0'), "{reason}");
    // No backoff was slept: a refusal is not an outage.
    assert_eq!(tayori_app::ports::Clock::now(&*w.clock), before);
    let record = block_on(w.store.delivery(delivery_id, None)).unwrap().unwrap();
    assert_eq!(record.status, DeliveryStatus::Failed);
    assert_eq!(record.reason.as_deref(), Some(reason.as_str()));
    let attempts = block_on(w.store.attempts(&record.tenant, delivery_id)).unwrap();
    assert_eq!(attempts[0].result, Some(AttemptResult::PermanentError));
    assert!(attempts[0].detail.as_deref().unwrap().contains(r"a\u{0}b"));
    assert_eq!(w.sender.calls(), 1);
}

#[test]
fn an_unkeyed_rejection_the_store_refuses_is_kept_with_its_text_made_storable() {
    let w = world();
    w.store.refuse_next_writes(1);
    let handled =
        block_on(w.handler.handle(&InboundMessage::first(b"{\"oops\": ".to_vec()))).unwrap();
    assert!(matches!(handled, Handled::RejectedWithoutKey { .. }), "{handled:?}");
    let kept = block_on(w.store.unkeyed_rejections(10)).unwrap();
    assert_eq!(kept.len(), 1);
    assert!(kept[0].reason.contains("not valid JSON"), "{}", kept[0].reason);
}
