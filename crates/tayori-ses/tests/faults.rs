//! The SES sender against a fault-injecting SES stand-in (moto cannot throttle, fail or stall):
//! every fault maps to the variant that says whether the email may have gone out, and each
//! `send` reaches the service exactly once (the SDK's own retries are off). Each case prints
//! its mapping and time; run with `--nocapture` to see the table.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::HashMap;
use std::io::Read;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use mail_parser::MessageParser;
use tayori_app::ports::{EmailSender, PauseScope, SendError};
use tayori_ses::{SendRateSource, SesConfig, SesSender, TenantPacing};

use support::{Reply, StandIn, base64_decode, delivery_id, email, fast_config, sdk_config, sender};

fn fail(status: u16, code: &'static str) -> Reply {
    Reply::Fail { status, code, retry_after: None }
}

/// Sends one email through a fresh stand-in answering `reply`; returns the result, the number
/// of requests the stand-in received, and how long the call took.
async fn send_once(reply: Reply) -> (Result<String, SendError>, usize, Duration) {
    let stand_in = StandIn::start(vec![reply], None).await;
    let sender = sender(&stand_in.url, &fast_config()).await;
    let email = email("acme-invest", "acme.example.com", delivery_id("acme-invest"));
    let started = Instant::now();
    let result = sender.send(&email).await.map(|sent| sent.provider_message_id);
    let took = started.elapsed();
    // Let a request still on its way (there should be none) arrive before counting.
    tokio::time::sleep(Duration::from_millis(100)).await;
    (result, stand_in.received().len(), took)
}

fn report(case: &str, result: &Result<String, SendError>, requests: usize, took: Duration) {
    let outcome = match result {
        Ok(id) => format!("Ok({id})"),
        Err(error) => format!("{error:?}"),
    };
    println!("fault | {case:<44} | requests {requests} | {:>5} ms | {outcome}", took.as_millis());
}

#[tokio::test]
async fn every_scripted_error_maps_to_its_variant_with_one_request_each() {
    type Check = fn(&SendError) -> bool;
    let cases: Vec<(&str, Reply, Check)> = vec![
        (
            "429 TooManyRequestsException + Retry-After 7",
            Reply::Fail { status: 429, code: "TooManyRequestsException", retry_after: Some(7) },
            |error| {
                matches!(error, SendError::Throttled { retry_after: Some(after), reason }
                    if *after == Duration::from_secs(7) && reason.contains("TooManyRequestsException"))
            },
        ),
        ("400 LimitExceededException", fail(400, "LimitExceededException"), |error| {
            matches!(error, SendError::Throttled { retry_after: None, .. })
        }),
        ("400 SendingPausedException", fail(400, "SendingPausedException"), |error| {
            matches!(error, SendError::Paused { scope: PauseScope::Tenant, .. })
        }),
        ("400 AccountSuspendedException", fail(400, "AccountSuspendedException"), |error| {
            matches!(error, SendError::Paused { scope: PauseScope::Account, .. })
        }),
        (
            "400 MessageRejected",
            fail(400, "MessageRejected"),
            |error| matches!(error, SendError::Rejected { reason } if reason.contains("MessageRejected")),
        ),
        (
            "400 MailFromDomainNotVerifiedException",
            fail(400, "MailFromDomainNotVerifiedException"),
            |error| matches!(error, SendError::Rejected { .. }),
        ),
        ("404 NotFoundException", fail(404, "NotFoundException"), |error| {
            matches!(error, SendError::Rejected { .. })
        }),
        ("400 BadRequestException", fail(400, "BadRequestException"), |error| {
            matches!(error, SendError::Rejected { .. })
        }),
        ("403 UnrecognizedClientException", fail(403, "UnrecognizedClientException"), |error| {
            matches!(error, SendError::Unavailable { .. })
        }),
        ("500 InternalFailure", fail(500, "InternalFailure"), |error| {
            matches!(error, SendError::Ambiguous { .. })
        }),
        ("502 (a proxy's answer)", fail(502, "BadGateway"), |error| {
            matches!(error, SendError::Ambiguous { .. })
        }),
        ("503 ServiceUnavailable", fail(503, "ServiceUnavailable"), |error| {
            matches!(error, SendError::Unavailable { .. })
        }),
    ];
    for (case, reply, check) in cases {
        let (result, requests, took) = send_once(reply).await;
        report(case, &result, requests, took);
        let error = result.expect_err(case);
        assert!(check(&error), "{case}: {error:?}");
        assert_eq!(requests, 1, "{case}: the SDK must not retry");
    }
}

#[tokio::test]
async fn no_answer_within_the_call_timeout_is_ambiguous() {
    // call_timeout is 1 s; the stand-in answers after 3 s, having received the request.
    let (result, requests, took) = send_once(Reply::AcceptAfter(Duration::from_secs(3))).await;
    report("200 after 3 s (call timeout 1 s)", &result, requests, took);
    assert!(matches!(result, Err(SendError::Ambiguous { .. })), "{result:?}");
    assert_eq!(requests, 1, "the SDK must not retry a timeout");
    assert!(took >= Duration::from_millis(900) && took < Duration::from_millis(2500), "{took:?}");
}

#[tokio::test]
async fn a_closed_port_is_unavailable() {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let sender = sender(&format!("http://127.0.0.1:{port}"), &fast_config()).await;
    let email = email("acme-invest", "acme.example.com", delivery_id("acme-invest"));
    let started = Instant::now();
    let result = sender.send(&email).await.map(|sent| sent.provider_message_id);
    let took = started.elapsed();
    report("connection refused (closed port)", &result, 0, took);
    match &result {
        Err(error @ SendError::Unavailable { reason }) => {
            assert!(error.is_transient());
            assert!(reason.contains("could not connect to SES"), "{reason}");
        }
        other => panic!("expected Unavailable, got {other:?}"),
    }
    assert!(took < Duration::from_millis(900), "refused at once, not timed out: {took:?}");
}

#[tokio::test]
async fn a_connection_dropped_after_the_request_is_ambiguous() {
    // A server that reads the whole request, then closes the connection without answering.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let connections = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&connections);
    std::thread::spawn(move || {
        for socket in listener.incoming() {
            let Ok(mut socket) = socket else { return };
            counted.fetch_add(1, Ordering::SeqCst);
            let mut request = Vec::new();
            let mut buffer = [0u8; 16 * 1024];
            // Headers and the JSON body: stop once the body's closing brace has arrived.
            while !request.ends_with(b"}") {
                match socket.read(&mut buffer) {
                    Ok(0) | Err(_) => break,
                    Ok(read) => request.extend_from_slice(&buffer[..read]),
                }
            }
            drop(socket);
        }
    });
    let sender = sender(&url, &fast_config()).await;
    let email = email("acme-invest", "acme.example.com", delivery_id("acme-invest"));

    let started = Instant::now();
    let result = sender.send(&email).await.map(|sent| sent.provider_message_id);
    let took = started.elapsed();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let requests = connections.load(Ordering::SeqCst);
    report("connection closed after the request", &result, requests, took);

    assert!(matches!(result, Err(SendError::Ambiguous { .. })), "{result:?}");
    assert_eq!(requests, 1, "one connection, no retry");
}

#[tokio::test]
async fn an_accepted_email_carries_everything_ses_needs() {
    let stand_in = StandIn::start(vec![Reply::Accept], None).await;
    let sender = sender(&stand_in.url, &fast_config()).await;
    let mut email = email("acme-invest", "acme.example.com", delivery_id("acme-invest"));
    email.sending.configuration_set = Some("acme-transactional".to_owned());
    email.sending.provider_tenant = Some("acme-invest-prod".to_owned());

    let started = Instant::now();
    let sent = sender.send(&email).await.expect("accepted");
    report("200 {\"MessageId\"}", &Ok(sent.provider_message_id.clone()), 1, started.elapsed());

    assert_eq!(sent.provider_message_id, "stand-in-1");
    let received = stand_in.received();
    assert_eq!(received.len(), 1);
    let request = &received[0];
    assert_eq!(request.body["FromEmailAddress"], "noreply@acme.example.com");
    assert_eq!(
        request.body["Destination"]["ToAddresses"],
        serde_json::json!(["taro.yamada@example.com"])
    );
    assert_eq!(request.body["ConfigurationSetName"], "acme-transactional");
    assert_eq!(request.body["TenantName"], "acme-invest-prod");
    assert_eq!(request.tag("tayori-tenant").as_deref(), Some("acme-invest"));
    assert_eq!(request.tag("tayori-event-type").as_deref(), Some("deposit_completed"));
    let delivery_id = email.delivery_id.to_string();
    assert_eq!(request.tag("tayori-delivery-id").as_deref(), Some(delivery_id.as_str()));
    assert!(request.body["Content"].get("Simple").is_none(), "raw content only");
    let raw = base64_decode(request.body["Content"]["Raw"]["Data"].as_str().unwrap());
    let message = MessageParser::default().parse(&raw).expect("a MIME message");
    assert_eq!(message.subject(), Some("【アクメ証券】入金完了のお知らせ"));
    assert_eq!(
        message.header_raw("X-Tayori-Delivery-Id").map(str::trim),
        Some(delivery_id.as_str())
    );
}

#[tokio::test]
async fn without_sending_options_no_configuration_set_or_tenant_is_named() {
    let stand_in = StandIn::start(vec![], None).await;
    let sender = sender(&stand_in.url, &fast_config()).await;
    let email = email("acme-invest", "acme.example.com", delivery_id("acme-invest"));

    sender.send(&email).await.expect("accepted");

    let body = &stand_in.received()[0].body;
    assert!(body.get("ConfigurationSetName").is_none(), "{body}");
    assert!(body.get("TenantName").is_none(), "{body}");
}

#[tokio::test]
async fn the_account_rate_comes_from_get_account_when_it_answers() {
    let stand_in = StandIn::start(vec![], Some(14.0)).await;
    let config = SesConfig { read_account_send_rate: true, send_rate: 2.0, ..fast_config() };

    let sender =
        SesSender::from_sdk_config(&sdk_config(&stand_in.url).await, &config, &HashMap::new())
            .await
            .unwrap();

    assert_eq!(sender.send_rate(), 14.0);
    assert_eq!(sender.send_rate_source(), SendRateSource::Account);

    let config = SesConfig { account_rate_share: 0.25, ..config };
    let sender =
        SesSender::from_sdk_config(&sdk_config(&stand_in.url).await, &config, &HashMap::new())
            .await
            .unwrap();
    assert_eq!((sender.send_rate(), sender.send_rate_source()), (3.5, SendRateSource::Account));

    let config = SesConfig { read_account_send_rate: false, ..config };
    let sender =
        SesSender::from_sdk_config(&sdk_config(&stand_in.url).await, &config, &HashMap::new())
            .await
            .unwrap();
    assert_eq!((sender.send_rate(), sender.send_rate_source()), (2.0, SendRateSource::Config));
}

#[tokio::test]
async fn invalid_settings_are_refused_at_construction_with_their_name() {
    let sdk = sdk_config("http://127.0.0.1:9").await;
    let config = SesConfig { call_timeout: Duration::from_millis(200), ..fast_config() };
    let error = SesSender::from_sdk_config(&sdk, &config, &HashMap::new()).await.unwrap_err();
    assert_eq!(error.setting, "sender.connect_timeout");

    let acme = tayori_domain::TenantId::parse("acme-invest").unwrap();
    let caps = HashMap::from([(acme.clone(), TenantPacing { max_send_rate: Some(0), weight: 1 })]);
    let error = SesSender::from_sdk_config(&sdk, &fast_config(), &caps).await.unwrap_err();
    assert_eq!(error.setting, "max_send_rate of tenant acme-invest");
    let weights = HashMap::from([(acme, TenantPacing { max_send_rate: None, weight: 1001 })]);
    let error = SesSender::from_sdk_config(&sdk, &fast_config(), &weights).await.unwrap_err();
    assert_eq!(error.setting, "weight of tenant acme-invest");
}

#[tokio::test]
async fn a_failure_before_the_request_leaves_is_unavailable() {
    // No credentials at all: the SDK fails while signing, before anything is sent.
    let stand_in = StandIn::start(vec![], None).await;
    let sdk = aws_config::SdkConfig::builder()
        .behavior_version(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new("us-east-1"))
        .endpoint_url(&stand_in.url)
        .build();
    let sender = SesSender::from_sdk_config(&sdk, &fast_config(), &HashMap::new()).await.unwrap();
    let email = email("acme-invest", "acme.example.com", delivery_id("acme-invest"));

    let started = Instant::now();
    let result = sender.send(&email).await.map(|sent| sent.provider_message_id);
    let requests = stand_in.received().len();
    report("no credentials (fails before sending)", &result, requests, started.elapsed());

    assert!(matches!(result, Err(SendError::Unavailable { .. })), "{result:?}");
    assert_eq!(requests, 0);
}
