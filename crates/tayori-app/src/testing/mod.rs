//! In-memory fakes of every port, and the conformance suite every [`DeliveryStore`] adapter runs.
//!
//! Fakes are for unit tests of the use cases only; adapters are tested against the real thing.
//!
//! [`DeliveryStore`]: crate::ports::DeliveryStore

pub mod admin_conformance;
mod fakes;
pub mod store_conformance;

pub use fakes::{
    FakeDeadLetters, FakeHeldEvents, FakePauseList, FakeRenderer, FakeSuppressions, FakeTenants,
    InMemoryStore, ManualClock, RecordingSender, example_event, tenant_profile,
};
