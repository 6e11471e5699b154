//! The conformance suite against the in-memory fake, so the fake used by the use-case tests
//! behaves like the real stores. (The real stores run the same suite in their own crates.)

use std::sync::Arc;

use async_trait::async_trait;
use tayori_app::ports::DeliveryStore;
use tayori_app::store_conformance_tests;
use tayori_app::testing::InMemoryStore;
use tayori_app::testing::store_conformance::StoreUnderTest;

struct Harness(Arc<InMemoryStore>);

#[async_trait]
impl StoreUnderTest for Harness {
    fn store(&self) -> Arc<dyn DeliveryStore> {
        self.0.clone()
    }
    async fn reconnect(&self) -> Arc<dyn DeliveryStore> {
        self.0.clone()
    }
}

async fn in_memory() -> Harness {
    Harness(Arc::new(InMemoryStore::default()))
}

mod in_memory {
    use super::*;
    store_conformance_tests!(blocking: in_memory());
}
