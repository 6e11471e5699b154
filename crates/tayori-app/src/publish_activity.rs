//! What this worker's tenants are doing, published for the operators' console: every few
//! seconds each worker writes its tenants' slots, waiting messages, hand-backs and send rate to
//! an [`ActivityBoard`] (PostgreSQL), and the admin server adds up what the live workers wrote.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tracing::warn;

use crate::ports::{ActivityBoard, Clock};
use crate::telemetry;

/// How often workers publish: the console's figures are at most this old (plus a page load).
pub const PUBLISH_EVERY: Duration = Duration::from_secs(5);

/// Publishes this worker's tenant activity every `every`, until stopped.
pub struct PublishActivity {
    /// Where it is published.
    pub board: Arc<dyn ActivityBoard>,
    /// This process's name on the board; unique per process.
    pub worker: String,
    /// The time.
    pub clock: Arc<dyn Clock>,
    /// Between publications; the console counts a worker gone after a few of them.
    pub every: Duration,
}

impl PublishActivity {
    /// How long after its last publication a worker's activity still counts: three rounds.
    pub fn live_for(every: Duration) -> Duration {
        every * 3
    }

    /// Publishes until `should_stop`, then withdraws what it published.
    pub async fn run(&self, should_stop: &(dyn Fn() -> bool + Sync)) {
        let mut last: Option<(DateTime<Utc>, HashMap<String, u64>)> = None;
        while !should_stop() {
            let now = self.clock.now();
            let readings = telemetry::tenant_activity();
            let mut tenants = Vec::with_capacity(readings.len());
            let mut accepted = HashMap::with_capacity(readings.len());
            for (mut activity, sent) in readings {
                // The rate since the last round; the first round has none to compare with.
                if let Some((at, before)) = &last {
                    let seconds = (now - *at).to_std().unwrap_or_default().as_secs_f64();
                    let delta =
                        sent.saturating_sub(before.get(&activity.tenant).copied().unwrap_or(0));
                    if seconds > 0.0 {
                        activity.send_rate = delta as f64 / seconds;
                    }
                }
                accepted.insert(activity.tenant.clone(), sent);
                tenants.push(activity);
            }
            if let Err(error) = self.board.publish(&self.worker, now, &tenants).await {
                warn!(%error, "cannot publish the tenants' activity for the console");
            }
            last = Some((now, accepted));
            // Short sleeps, so that a stop is seen within a second.
            let until = now + chrono::Duration::from_std(self.every).unwrap_or_default();
            while !should_stop() && self.clock.now() < until {
                self.clock.sleep(Duration::from_millis(250).min(self.every)).await;
            }
        }
        if let Err(error) = self.board.withdraw(&self.worker).await {
            warn!(%error, "cannot withdraw the tenants' activity; it ages out");
        }
    }
}
