//! The sender's rate limits, end to end through the SDK to the SES stand-in: the global rate is
//! kept and shared fairly between tenants, a tenant's cap is kept without slowing the others,
//! and a wait beyond `max_rate_wait` gives up with `Throttled` before calling SES. Bounds are
//! generous: the assertions are about counts and order, not tight timings.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tayori_app::ports::{EmailSender, SendError};
use tayori_domain::TenantId;
use tayori_ses::{SesConfig, SesSender, TenantPacing};

use support::{Received, StandIn, delivery_id, email, fast_config, sdk_config};

async fn sender_with(
    stand_in: &StandIn,
    config: SesConfig,
    caps: &[(&str, u32)],
) -> Arc<SesSender> {
    let caps: HashMap<TenantId, TenantPacing> = caps
        .iter()
        .map(|(tenant, rate)| {
            let pacing = TenantPacing { max_send_rate: Some(*rate), weight: 1 };
            (TenantId::parse(tenant).unwrap(), pacing)
        })
        .collect();
    Arc::new(
        SesSender::from_sdk_config(&sdk_config(&stand_in.url).await, &config, &caps).await.unwrap(),
    )
}

/// Sends `count` emails for `tenant` at once; each task ends when its send does.
fn send_many(
    sender: &Arc<SesSender>,
    tenant: &'static str,
    count: usize,
) -> Vec<tokio::task::JoinHandle<Result<(), SendError>>> {
    (0..count)
        .map(|_| {
            let sender = Arc::clone(sender);
            tokio::spawn(async move {
                let email = email(tenant, "acme.example.com", delivery_id(tenant));
                sender.send(&email).await.map(|_| ())
            })
        })
        .collect()
}

fn tenants_in_order(received: &[Received]) -> Vec<String> {
    received.iter().map(|request| request.tag("tayori-tenant").unwrap()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_global_rate_is_kept_and_shared_fairly_between_tenants() {
    let stand_in = StandIn::start(vec![], None).await;
    let sender = sender_with(&stand_in, SesConfig { send_rate: 20.0, ..fast_config() }, &[]).await;

    let started = Instant::now();
    // The busy tenant queues 20 emails first, the quiet one 10 just after.
    let mut tasks = send_many(&sender, "busy-tenant", 20);
    tokio::time::sleep(Duration::from_millis(30)).await;
    tasks.extend(send_many(&sender, "quiet-tenant", 10));
    for task in tasks {
        task.await.unwrap().expect("sent");
    }
    let took = started.elapsed();

    let received = stand_in.received();
    let order = tenants_in_order(&received);
    println!("rate | 30 sends at 20/s took {} ms; order {order:?}", took.as_millis());
    assert_eq!(received.len(), 30);
    // 29 intervals of 50 ms after the first: about 1.45 s.
    assert!(took >= Duration::from_millis(1300), "faster than the rate: {took:?}");
    assert!(took < Duration::from_secs(4), "{took:?}");
    // Never more than 20 in any second at the stand-in (burst 1): check every 1 s window.
    // Requests are stamped by concurrent handlers, so two close ones can be logged out of order.
    let mut times: Vec<Duration> = received.iter().map(|request| request.at).collect();
    times.sort();
    for (at, start) in times.iter().enumerate() {
        let in_window =
            times[at..].iter().take_while(|time| **time - *start < Duration::from_secs(1)).count();
        assert!(in_window <= 21, "{in_window} sends within 1 s from {start:?}");
    }
    // First come, first served would send the quiet tenant's emails last (#21-#30);
    // round-robin interleaves them, so its last one is among the first ~22.
    let last_quiet = order.iter().rposition(|tenant| tenant == "quiet-tenant").unwrap();
    assert!(last_quiet < 25, "the quiet tenant waited behind the busy one: {order:?}");
    // Both progress: in the first half, each tenant sent some.
    let first_half = &order[..15];
    assert!(first_half.iter().filter(|tenant| *tenant == "quiet-tenant").count() >= 4, "{order:?}");
    assert!(first_half.iter().filter(|tenant| *tenant == "busy-tenant").count() >= 4, "{order:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_cap_is_kept_without_slowing_the_others() {
    let stand_in = StandIn::start(vec![], None).await;
    let sender = sender_with(
        &stand_in,
        SesConfig { send_rate: 50.0, ..fast_config() },
        &[("capped-tenant", 4)],
    )
    .await;

    let started = Instant::now();
    let mut tasks = send_many(&sender, "capped-tenant", 5);
    tasks.extend(send_many(&sender, "free-tenant", 20));
    for task in tasks {
        task.await.unwrap().expect("sent");
    }
    let took = started.elapsed();

    let received = stand_in.received();
    let last = |tenant: &str| {
        received
            .iter()
            .filter(|r| r.tag("tayori-tenant").as_deref() == Some(tenant))
            .map(|r| r.at)
            .max()
            .unwrap()
    };
    let capped: Vec<Duration> = received
        .iter()
        .filter(|r| r.tag("tayori-tenant").as_deref() == Some("capped-tenant"))
        .map(|r| r.at)
        .collect();
    println!(
        "rate | cap 4/s: capped tenant's 5 sends at {capped:?}; free tenant's 20 done at {:?}; total {} ms",
        last("free-tenant"),
        took.as_millis()
    );
    assert_eq!(received.len(), 25);
    // 5 at 4/s: 4 intervals of 250 ms.
    let span = capped[4] - capped[0];
    assert!(span >= Duration::from_millis(900), "the cap was exceeded: {capped:?}");
    for pair in capped.windows(2) {
        assert!(pair[1] - pair[0] >= Duration::from_millis(200), "{capped:?}");
    }
    // 20 at 50/s take about 0.4 s, well before the capped tenant is done.
    assert!(last("free-tenant") < last("capped-tenant"), "the capped tenant held up the others");
    assert!(
        last("free-tenant").saturating_sub(capped[0]) < Duration::from_millis(900),
        "{:?}",
        last("free-tenant")
    );
}

#[tokio::test]
async fn waiting_longer_than_max_rate_wait_is_throttled_without_calling_ses() {
    let stand_in = StandIn::start(vec![], None).await;
    let config =
        SesConfig { send_rate: 0.5, max_rate_wait: Duration::from_millis(300), ..fast_config() };
    let sender = sender_with(&stand_in, config, &[]).await;
    let email = email("acme-invest", "acme.example.com", delivery_id("acme-invest"));

    sender.send(&email).await.expect("the first send has a slot");
    let started = Instant::now();
    let error = sender.send(&email).await.unwrap_err();
    let waited = started.elapsed();
    println!(
        "rate | second send at 0.5/s with max_rate_wait 0.3 s: {error:?} after {} ms",
        waited.as_millis()
    );

    match &error {
        SendError::Throttled { retry_after: Some(after), .. } => {
            assert_eq!(*after, Duration::from_secs(2), "one interval at 0.5/s")
        }
        other => panic!("expected Throttled with a hint, got {other:?}"),
    }
    assert!(
        waited >= Duration::from_millis(250) && waited < Duration::from_millis(1500),
        "{waited:?}"
    );
    assert_eq!(stand_in.received().len(), 1, "the throttled send never reached SES");
}
