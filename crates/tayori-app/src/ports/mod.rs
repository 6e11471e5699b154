//! The ports: what the use cases need from the outside world, as traits. Each port's contract is
//! written as MUST sentences on its methods; adapters are tested against them.

mod activity;
mod admin;
mod clock;
mod dead_letters;
mod feedback;
mod held;
mod previews;
mod queue;
mod retention;
mod send_rate;
mod sender;
mod sessions;
mod store;
mod suppression;
mod templates;
mod tenants;
mod unsubscribe;
mod workers;

pub use activity::{ActivityBoard, TenantActivity};
pub use admin::{
    AdminStore, AuditEntry, AuditLog, AuditQuery, AuditRecord, DeliveryFeedback, DeliveryLink,
    DeliveryLinks, DeliveryQueries, DeliverySearch, DeliveryStats, FeedbackEntry, LinkKind,
    OutcomeCount, ReputationCount, Role, StoreReadiness, SuppressionAdmin, SuppressionEntry,
    SuppressionQuery, TenantPause, TenantPauses, TenantScope, TokenRecord, TokenStore,
    UnkeyedRejectionLog, UnknownRole, UnknownSends, UnmatchedFeedbackCursor,
    UnmatchedFeedbackRecord,
};
pub use clock::Clock;
pub use dead_letters::{DeadLetterDepth, DeadLetterError, DeadLetterMessage, DeadLetters};
pub use feedback::{
    FeedbackPolicy, FeedbackRecord, FeedbackRecorded, FeedbackStore, ReputationGuard,
    ReputationThresholds, TenantPauseList, TenantReputation,
};
pub use held::{HeldEntry, HeldEvent, HeldEvents, HeldSummary, LeasedEvent, TenantHolding};
pub use previews::{
    Preview, PreviewCatalog, PreviewError, PreviewEvent, PreviewRequest, PreviewTenant,
    TemplatePreviews, TemplatesVersion,
};
pub use queue::{EventQueue, QueueError};
pub use retention::{PrunableCounts, RetentionStore};
pub use send_rate::{AccountRateError, SendRateControl};
pub use sender::{EmailSender, PauseScope, SendError, SentEmail};
pub use sessions::{ConsoleSessionStore, SessionRecord};
pub use store::{
    AttemptEnd, AttemptRecord, AttemptResult, Claim, ClaimRequest, DeliveryCursor, DeliveryPage,
    DeliveryQuery, DeliveryRecord, DeliveryStore, RecordOutcome, StoreError, UnkeyedRejection,
    UnkeyedRejectionRecord, refuse_nul,
};
pub use suppression::{NoSuppressions, Suppression, SuppressionError, SuppressionList};
pub use templates::{MessageClass, RenderError, RenderedEmail, TemplateRenderer};
pub use tenants::{TenantDirectory, TenantProfile};
pub use unsubscribe::UnsubscribeStore;
pub use workers::WorkerRegistry;
