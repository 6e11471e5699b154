//! The sender as the workers' rate sharing drives it ([`SendRateControl`]), through the SDK to
//! the SES stand-in: `GetAccount` read again on demand and its refusals told apart, and a rate
//! changed while sends wait pacing them from then on.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tayori_app::ports::{AccountRateError, EmailSender, SendRateControl};
use tayori_ses::{SesConfig, SesSender};

use support::{Account, StandIn, delivery_id, email, fast_config, sdk_config};

#[tokio::test]
async fn the_account_rate_is_read_on_demand_and_refusals_are_told_apart() {
    let stand_in = StandIn::start(vec![], Some(14.0)).await;
    let config = SesConfig { read_account_send_rate: true, ..fast_config() };
    let sender =
        SesSender::from_sdk_config(&sdk_config(&stand_in.url).await, &config, &HashMap::new())
            .await
            .unwrap();
    assert_eq!(sender.account_send_rate().await, Ok(14.0));

    // SES raised the quota: the next read sees it.
    stand_in.set_account(Account::Rate(40.0));
    assert_eq!(sender.account_send_rate().await, Ok(40.0));

    stand_in.set_account(Account::Denied);
    let denied = sender.account_send_rate().await.unwrap_err();
    assert!(
        matches!(&denied, AccountRateError::Denied { reason } if reason.contains("AccessDenied")),
        "{denied:?}"
    );

    stand_in.set_account(Account::NotFound);
    let missing = sender.account_send_rate().await.unwrap_err();
    assert!(matches!(missing, AccountRateError::Unavailable { .. }), "{missing:?}");
    assert!(stand_in.received().is_empty(), "reading the quota sends nothing");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rate_changed_while_sends_wait_paces_them_from_then_on() {
    let stand_in = StandIn::start(vec![], None).await;
    let config =
        SesConfig { send_rate: 2.0, max_rate_wait: Duration::from_secs(20), ..fast_config() };
    let sender = Arc::new(
        SesSender::from_sdk_config(&sdk_config(&stand_in.url).await, &config, &HashMap::new())
            .await
            .unwrap(),
    );
    let started = Instant::now();
    let sends: Vec<_> = (0..21)
        .map(|_| {
            let sender = Arc::clone(&sender);
            tokio::spawn(async move {
                sender
                    .send(&email("acme-invest", "acme.example.com", delivery_id("acme-invest")))
                    .await
            })
        })
        .collect();
    // At 2/s: one at once, one after 500 ms.
    tokio::time::sleep(Duration::from_millis(700)).await;
    let before = stand_in.received().len();
    assert!((1..=3).contains(&before), "{before} sent at 2/s in 700 ms");
    sender.set_send_rate(40.0);
    assert_eq!(sender.send_rate(), 40.0);
    for send in sends {
        send.await.unwrap().unwrap();
    }
    // The other ~19 at 40/s take about half a second, not nine and a half.
    let elapsed = started.elapsed();
    assert!(elapsed < Duration::from_millis(2000), "{elapsed:?}");
    let received = stand_in.received();
    let after: Vec<Duration> = received[before..].iter().map(|r| r.at).collect();
    let span = *after.last().unwrap() - after[0];
    let intervals = (after.len() - 1) as u32;
    assert!(span >= Duration::from_millis(25) * intervals - Duration::from_millis(50), "{after:?}");
    // A rate out of range is not applied.
    sender.set_send_rate(0.0);
    assert_eq!(sender.send_rate(), 40.0);
}
