//! Admin conformance cases for who may come in and what stops mail: tokens, the audit log, the
//! console's sessions, tenant pauses and held events, suppressions, readiness.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is the failure report

use super::AdminStoreUnderTest;

/// The cases of this module, for [`admin_store_conformance_tests!`](crate::admin_store_conformance_tests).
#[macro_export]
#[doc(hidden)]
macro_rules! admin_access_conformance_cases {
    ($make:expr) => {
        $crate::admin_store_conformance_tests!(@cases access, $make;
            a_fresh_store_is_ready,
        );
    };
}

/// A fresh store answers its readiness check.
pub async fn a_fresh_store_is_ready(harness: &impl AdminStoreUnderTest) {
    harness.admin().ping().await.expect("a fresh store is ready");
}
