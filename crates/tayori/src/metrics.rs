//! The Prometheus recorder behind tayori's metrics, and the text `/metrics` serves.
//!
//! Names, labels and help texts are not here: they live in `tayori_app::telemetry`, which the
//! use case and the adapters call. This module only installs the recorder those calls reach,
//! chooses the histogram buckets, and renders the Prometheus text format (which Datadog's
//! OpenMetrics check reads). No listener of its own: `http_health` serves the text.

use std::sync::OnceLock;
use std::time::Duration;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tayori_domain::TenantId;

/// Buckets of every `*_seconds` histogram: from a fast SES call (~20 ms) to a send that waited
/// out the rate limit (20 s) and a queue backlog (minutes).
const SECONDS_BUCKETS: &[f64] =
    &[0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 60.0, 300.0];

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Installs the recorder (once per process: later calls return the same handle), registers
/// every metric's description, and creates the series of `tenants` at zero.
pub fn install(tenants: &[TenantId]) -> PrometheusHandle {
    let handle = HANDLE.get_or_init(|| {
        let builder = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), SECONDS_BUCKETS)
            .unwrap_or_else(|_| PrometheusBuilder::new());
        let recorder = builder.build_recorder();
        let handle = recorder.handle();
        if metrics::set_global_recorder(recorder).is_err() {
            tracing::warn!(
                "a metrics recorder was installed before tayori's; /metrics stays empty"
            );
        }
        // Histograms keep their samples until upkeep drains them into the buckets.
        let upkeep = handle.clone();
        std::thread::Builder::new()
            .name("metrics-upkeep".into())
            .spawn(move || {
                loop {
                    std::thread::sleep(Duration::from_secs(5));
                    upkeep.run_upkeep();
                }
            })
            .ok();
        handle
    });
    tayori_app::telemetry::describe(env!("CARGO_PKG_VERSION"), tenants);
    handle.clone()
}

/// The current values in the Prometheus text format.
pub fn render(handle: &PrometheusHandle) -> String {
    handle.render()
}
