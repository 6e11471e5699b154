//! What the SES sender's tests share: an email, SDK configuration for a local endpoint, unique
//! names, and a fault-injecting SES stand-in.

#![allow(dead_code)] // each test file uses its own part of this module

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_sesv2::config::Credentials;
use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderName, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use tayori_domain::{
    DeliveryId, DisplayName, EmailAddress, EventId, EventSource, EventType, IdempotencyKey,
    Mailbox, OutgoingEmail, SendingOptions, Subject, TenantId,
};
use tayori_ses::{SesConfig, SesSender};

/// The moto server started by `scripts/test`. Panics, naming the variable, when it is not set:
/// these tests never skip silently.
pub fn moto_endpoint() -> String {
    std::env::var("TAYORI_TEST_AWS_ENDPOINT").unwrap_or_else(|_| {
        panic!(
            "TAYORI_TEST_AWS_ENDPOINT is not set: these tests need a moto server \
             (scripts/test starts one and sets it, e.g. http://127.0.0.1:5000)"
        )
    })
}

/// SDK configuration as the binary would load it, pointed at `endpoint` with static test
/// credentials in us-east-1.
pub async fn sdk_config(endpoint: &str) -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .endpoint_url(endpoint)
        .credentials_provider(Credentials::new("test", "test", None, None, "tayori-tests"))
        .load()
        .await
}

/// A name no other test in this run (or an earlier run against the same moto) uses.
pub fn unique(prefix: &str) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos();
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    format!("{prefix}-{}-{nanos}-{n}", std::process::id())
}

/// A Japanese deposit notice from `noreply@{domain}` for `tenant`.
pub fn email(tenant: &str, domain: &str, delivery_id: DeliveryId) -> OutgoingEmail {
    OutgoingEmail {
        delivery_id,
        tenant: TenantId::parse(tenant).unwrap(),
        event_type: EventType::parse("deposit.completed").unwrap(),
        from: Mailbox {
            address: EmailAddress::parse(&format!("noreply@{domain}")).unwrap(),
            name: Some(DisplayName::parse("アクメ証券 お知らせ").unwrap()),
        },
        reply_to: Some(Mailbox {
            address: EmailAddress::parse(&format!("support@{domain}")).unwrap(),
            name: Some(DisplayName::parse("サポート窓口").unwrap()),
        }),
        to: Mailbox {
            address: EmailAddress::parse("taro.yamada@example.com").unwrap(),
            name: Some(DisplayName::parse("山田 太郎").unwrap()),
        },
        subject: Subject::parse("【アクメ証券】入金完了のお知らせ").unwrap(),
        html_body: "<p>山田 太郎 様</p>\n<p>10,000円の入金を確認しました。</p>\n".to_owned(),
        text_body: "山田 太郎 様\n\n10,000円の入金を確認しました。\n".to_owned(),
        sending: SendingOptions::default(),
        list_unsubscribe: None,
    }
}

/// A delivery id no other test uses, derived as the domain derives them: from the idempotency
/// key of a made-up event.
pub fn delivery_id(tenant: &str) -> DeliveryId {
    IdempotencyKey::new(
        TenantId::parse(tenant).unwrap(),
        EventSource::parse("tayori-ses-tests").unwrap(),
        EventId::parse(&unique("event")).unwrap(),
    )
    .delivery_id()
}

/// Settings for tests: no `GetAccount`, a high rate, short timeouts.
pub fn fast_config() -> SesConfig {
    SesConfig {
        send_rate: 1000.0,
        read_account_send_rate: false,
        connect_timeout: Duration::from_millis(500),
        call_timeout: Duration::from_secs(1),
        ..SesConfig::default()
    }
}

/// For tests against moto: moto loads each service lazily, so its first answer can take seconds
/// on a busy machine; a short timeout there would test the machine's load, not the sender.
pub fn moto_config() -> SesConfig {
    SesConfig { call_timeout: Duration::from_secs(20), ..fast_config() }
}

/// A sender on `endpoint` with `config` and no tenant caps.
pub async fn sender(endpoint: &str, config: &SesConfig) -> SesSender {
    SesSender::from_sdk_config(&sdk_config(endpoint).await, config, &HashMap::new()).await.unwrap()
}

/// What the stand-in answers to one `SendEmail`.
#[derive(Debug, Clone)]
pub enum Reply {
    /// `200 {"MessageId": ...}`.
    Accept,
    /// An AWS error: status, `x-amzn-errortype` and a JSON body, plus `Retry-After` when given.
    Fail { status: u16, code: &'static str, retry_after: Option<u32> },
    /// Accept, but only after this long.
    AcceptAfter(Duration),
}

/// One `SendEmail` the stand-in received.
#[derive(Debug, Clone)]
pub struct Received {
    /// When, since the stand-in started.
    pub at: Duration,
    /// The JSON body.
    pub body: serde_json::Value,
}

impl Received {
    /// The value of the tag `name`.
    pub fn tag(&self, name: &str) -> Option<String> {
        self.body["EmailTags"].as_array()?.iter().find_map(|tag| {
            (tag["Name"] == name).then(|| tag["Value"].as_str().unwrap_or_default().to_owned())
        })
    }
}

#[derive(Clone)]
struct StandInState {
    started: Instant,
    script: Arc<Mutex<VecDeque<Reply>>>,
    received: Arc<Mutex<Vec<Received>>>,
    account: Arc<Mutex<Account>>,
}

/// What the stand-in answers to `GetAccount`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Account {
    /// A `SendQuota` with this `MaxSendRate`.
    Rate(f64),
    /// 404, like moto.
    NotFound,
    /// 403 `AccessDeniedException`: no `ses:GetAccount` permission.
    Denied,
}

/// A fault-injecting SES v2 stand-in on 127.0.0.1: answers `POST /v2/email/outbound-emails`
/// with the scripted replies in order (then `Accept`), and `GET /v2/email/account` with the
/// given send rate (404 without one, like moto; [`StandIn::set_account`] changes it).
pub struct StandIn {
    pub url: String,
    state: StandInState,
}

impl StandIn {
    pub async fn start(script: Vec<Reply>, account_rate: Option<f64>) -> Self {
        let state = StandInState {
            started: Instant::now(),
            script: Arc::new(Mutex::new(script.into())),
            received: Arc::new(Mutex::new(Vec::new())),
            account: Arc::new(Mutex::new(account_rate.map_or(Account::NotFound, Account::Rate))),
        };
        let router = Router::new()
            .route("/v2/email/outbound-emails", post(send_email))
            .route("/v2/email/account", get(get_account))
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr: SocketAddr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
        Self { url: format!("http://{addr}"), state }
    }

    /// Every `SendEmail` received so far, in order.
    pub fn received(&self) -> Vec<Received> {
        self.state.received.lock().unwrap().clone()
    }

    /// Changes what `GetAccount` answers from now on.
    pub fn set_account(&self, account: Account) {
        *self.state.account.lock().unwrap() = account;
    }

    /// Queues more replies.
    pub fn script(&self, replies: impl IntoIterator<Item = Reply>) {
        self.state.script.lock().unwrap().extend(replies);
    }
}

async fn send_email(State(state): State<StandInState>, body: Bytes) -> Response {
    let at = state.started.elapsed();
    let body = serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null);
    let number = {
        let mut received = state.received.lock().unwrap();
        received.push(Received { at, body });
        received.len()
    };
    let reply = state.script.lock().unwrap().pop_front().unwrap_or(Reply::Accept);
    let accept = move || {
        let body = serde_json::json!({ "MessageId": format!("stand-in-{number}") });
        (
            StatusCode::OK,
            [(HeaderName::from_static("content-type"), "application/json")],
            body.to_string(),
        )
            .into_response()
    };
    match reply {
        Reply::Accept => accept(),
        Reply::AcceptAfter(delay) => {
            tokio::time::sleep(delay).await;
            accept()
        }
        Reply::Fail { status, code, retry_after } => {
            let body = serde_json::json!({ "message": format!("scripted {code}") });
            let mut response = (
                StatusCode::from_u16(status).unwrap(),
                [
                    (HeaderName::from_static("content-type"), "application/json".to_owned()),
                    (HeaderName::from_static("x-amzn-errortype"), code.to_owned()),
                ],
                body.to_string(),
            )
                .into_response();
            if let Some(seconds) = retry_after {
                response.headers_mut().insert("retry-after", seconds.to_string().parse().unwrap());
            }
            response
        }
    }
}

async fn get_account(State(state): State<StandInState>) -> Response {
    let account = *state.account.lock().unwrap();
    match account {
        Account::Rate(rate) => {
            let body = serde_json::json!({
                "SendQuota": { "Max24HourSend": 50000.0, "MaxSendRate": rate, "SentLast24Hours": 0.0 },
                "SendingEnabled": true,
                "ProductionAccessEnabled": true,
                "DedicatedIpAutoWarmupEnabled": false,
            });
            (
                StatusCode::OK,
                [(HeaderName::from_static("content-type"), "application/json")],
                body.to_string(),
            )
                .into_response()
        }
        Account::NotFound => (
            StatusCode::NOT_FOUND,
            [(HeaderName::from_static("x-amzn-errortype"), "NotFoundException")],
            "{}",
        )
            .into_response(),
        Account::Denied => (
            StatusCode::FORBIDDEN,
            [
                (HeaderName::from_static("content-type"), "application/json"),
                (HeaderName::from_static("x-amzn-errortype"), "AccessDeniedException"),
            ],
            r#"{"message":"not authorized to perform ses:GetAccount"}"#,
        )
            .into_response(),
    }
}

/// Standard base64 (with padding) to bytes: the raw message in a `SendEmail` body.
pub fn base64_decode(text: &str) -> Vec<u8> {
    let value = |c: u8| -> u32 {
        match c {
            b'A'..=b'Z' => u32::from(c - b'A'),
            b'a'..=b'z' => u32::from(c - b'a') + 26,
            b'0'..=b'9' => u32::from(c - b'0') + 52,
            b'+' => 62,
            b'/' => 63,
            other => panic!("not base64: {other:?}"),
        }
    };
    let clean: Vec<u8> = text.bytes().filter(|c| *c != b'=').collect();
    let mut out = Vec::with_capacity(clean.len() * 3 / 4);
    for chunk in clean.chunks(4) {
        let mut bits = 0u32;
        for (at, c) in chunk.iter().enumerate() {
            bits |= value(*c) << (18 - 6 * at);
        }
        let bytes = bits.to_be_bytes();
        out.extend_from_slice(&bytes[1..chunk.len()]);
    }
    out
}
