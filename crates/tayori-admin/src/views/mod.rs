//! What the API returns and the console shows, built from the use cases' answers: one module
//! per capability, named as in `api` and `console`. Re-exported here, so that both reach every
//! view as `crate::views::X`.

mod dead_letters;
mod deliveries;
mod insight;
mod resend;
mod suppressions;
mod tenants;
mod tokens;

pub use dead_letters::{DeadLettersView, RedriveView};
pub use deliveries::{DeliveryDetailView, DeliveryList, DeliverySummary};
pub use insight::{
    AuditView, CountView, ReputationRow, ReputationView, StatsView, UnmatchedFeedbackList,
    UnmatchedFeedbackView,
};
pub use resend::{ActionView, RejectedEvents, UnkeyedView};
pub use suppressions::SuppressionView;
pub use tenants::{DiscardView, HeldView, PauseView, PausedView, ResumeView};
pub use tokens::TokenView;
