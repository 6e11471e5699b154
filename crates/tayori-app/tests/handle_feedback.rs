//! The feedback use case against a recording fake of its store: what it hands the store for a
//! readable event and for an unreadable body, and that a store outage leaves the message for a
//! retry rather than dropping it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use tayori_app::ports::{
    FeedbackPolicy, FeedbackRecord, FeedbackRecorded, FeedbackStore, StoreError,
};
use tayori_app::testing::ManualClock;
use tayori_app::{FeedbackHandler, InboundMessage};

#[derive(Default)]
struct RecordingStore {
    seen: Mutex<Vec<String>>,
    down: Mutex<bool>,
}

#[async_trait]
impl FeedbackStore for RecordingStore {
    async fn record_feedback(
        &self,
        record: FeedbackRecord<'_>,
        policy: &FeedbackPolicy,
        _now: DateTime<Utc>,
    ) -> Result<FeedbackRecorded, StoreError> {
        assert_eq!(policy.transient_bounce_limit, 5, "the handler's policy is passed on");
        if *self.down.lock().unwrap() {
            return Err(StoreError::Unavailable("fake outage".into()));
        }
        let (line, recorded) = match record {
            FeedbackRecord::Event(event) => (
                format!("event {} {}", event.kind.name(), event.identity),
                FeedbackRecorded::Unmatched,
            ),
            FeedbackRecord::Invalid { invalid, body } => (
                format!("invalid {} {} bytes: {}", invalid.identity, body.len(), invalid.reason),
                FeedbackRecorded::Invalid,
            ),
        };
        self.seen.lock().unwrap().push(line);
        Ok(recorded)
    }
}

fn handler(store: Arc<RecordingStore>) -> FeedbackHandler {
    FeedbackHandler {
        store,
        clock: Arc::new(ManualClock::new()),
        policy: FeedbackPolicy { transient_bounce_limit: 5, ..FeedbackPolicy::default() },
    }
}

const SNS_BOUNCE: &str = r#"{"Type":"Notification","MessageId":"m-1","Message":"{\"eventType\":\"Bounce\",\"bounce\":{\"bounceType\":\"Permanent\",\"bounceSubType\":\"General\",\"bouncedRecipients\":[{\"emailAddress\":\"a@example.com\"}]},\"mail\":{\"messageId\":\"ses-1\"}}"}"#;

#[test]
fn events_and_unreadable_bodies_are_both_recorded_and_an_outage_is_retried() {
    futures::executor::block_on(async {
        let store = Arc::new(RecordingStore::default());
        let handler = handler(store.clone());
        let recorded = handler.handle(&InboundMessage::first(SNS_BOUNCE.into())).await.unwrap();
        assert_eq!(recorded, FeedbackRecorded::Unmatched);
        let recorded = handler.handle(&InboundMessage::first(b"garbage".to_vec())).await.unwrap();
        assert_eq!(recorded, FeedbackRecorded::Invalid);
        let seen = store.seen.lock().unwrap().clone();
        assert_eq!(seen[0], "event bounce sns:m-1");
        assert!(seen[1].starts_with("invalid sha256:"), "{seen:?}");
        assert!(seen[1].contains("7 bytes: not JSON"), "{seen:?}");

        *store.down.lock().unwrap() = true;
        let retry = handler.handle(&InboundMessage::first(SNS_BOUNCE.into())).await.unwrap_err();
        assert!(retry.reason.contains("fake outage"), "{retry:?}");
        assert_eq!(store.seen.lock().unwrap().len(), 2, "nothing recorded during the outage");
    });
}
