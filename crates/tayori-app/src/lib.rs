//! tayori's use cases and the ports they need.
//!
//! It owns the path of one event — decode, resolve the tenant, check suppression, render, claim
//! the idempotency key, send, record the outcome — in [`handle_event`], the recording of SES
//! feedback in [`handle_feedback`], the release of events held for a paused tenant in
//! [`release_held`], the division of the account's send rate among the running workers in
//! [`share_send_rate`], the deletion of records past their retention in [`prune`], what each
//! worker's tenants are doing for the console in [`publish_activity`], and
//! the traits that the adapters implement ([`ports`]). It
//! depends only on the domain; it must not name a concrete technology: no async runtime,
//! database driver, AWS SDK, HTTP framework or template engine (a check in `scripts/test`
//! enforces that). In-memory fakes of every port and the store
//! conformance suite live behind the `testing` feature; failpoints at the event path's
//! boundaries (for the binary's crash tests) behind the `failpoints` feature.

/// A failpoint of the crash tests (tikv's fail-rs): the binary arms it to kill the process here
/// (`docs/idempotency.md`, "Crash points"). Without the `failpoints` feature it is nothing.
macro_rules! failpoint {
    ($name:literal) => {
        #[cfg(feature = "failpoints")]
        fail::fail_point!($name);
    };
}

pub mod accept_event;
pub mod admin;
pub mod console_sessions;
pub mod handle_event;
pub mod handle_feedback;
pub mod inbound;
pub mod ports;
pub mod prune;
pub mod publish_activity;
pub mod release_held;
pub mod share_send_rate;
pub mod telemetry;
#[cfg(feature = "testing")]
pub mod testing;
pub mod unsubscribe;

pub use accept_event::{Accepted, EventIntake, IntakeError};
pub use admin::{AdminError, AdminService, Principal};
pub use console_sessions::{ConsoleSessions, SessionPolicy, SignedIn};
pub use handle_event::{
    DeliveryPolicy, EventHandler, Handled, InboundMessage, RetryLater, UnsubscribeLinks,
};
pub use handle_feedback::FeedbackHandler;
pub use inbound::MessageHandler;
pub use publish_activity::PublishActivity;
pub use release_held::{ReleaseHeldEvents, ReleaseSettings, Released};
pub use share_send_rate::{AccountRateSettings, RateSource, Share, ShareSendRate, Sharing};
pub use unsubscribe::{UnsubscribeError, UnsubscribeService, Unsubscribed};
