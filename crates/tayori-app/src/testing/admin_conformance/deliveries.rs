//! Admin conformance cases for what operators read about deliveries: searches, feedback,
//! links from resends and replays, unknown sends, unkeyed rejections, statistics.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is the failure report

use super::AdminStoreUnderTest;

/// The cases of this module, for [`admin_store_conformance_tests!`](crate::admin_store_conformance_tests).
#[macro_export]
#[doc(hidden)]
macro_rules! admin_delivery_conformance_cases {
    ($make:expr) => {
        $crate::admin_store_conformance_tests!(@cases deliveries, $make;
            a_fresh_store_has_no_unmatched_feedback,
        );
    };
}

/// A fresh store has no feedback that matched no delivery.
pub async fn a_fresh_store_has_no_unmatched_feedback(harness: &impl AdminStoreUnderTest) {
    let unmatched = harness.admin().unmatched_feedback(None, 10).await.expect("read");
    assert!(unmatched.is_empty());
}
