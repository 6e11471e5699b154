//! The real clock: the system's wall time and tokio's timers.

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use tayori_app::ports::Clock;

/// Wall-clock time, tokio sleeps.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

#[async_trait]
impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }

    async fn sleep(&self, duration: Duration) {
        tokio::time::sleep(duration).await;
    }
}
