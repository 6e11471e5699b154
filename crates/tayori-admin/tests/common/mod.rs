//! The admin router on real parts: a fresh PostgreSQL database, the repository's templates, the
//! real handle-event use case with the PostgreSQL suppression list and pause list. Only the mail service is a
//! recording fake, and the renderer can be told to refuse one event type (to play "the template
//! is missing" and "the template was added").
#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use axum::Router;
use axum::body::{Body, to_bytes};
use axum::http::{Request, StatusCode, header};
use chrono::{DateTime, Utc};
use serde_json::Value;
use sha2::{Digest, Sha256};
use tayori_admin::{AdminState, SignInQuota, router};
use tayori_app::admin::AdminService;
use tayori_app::ports::{
    Clock, RenderError, RenderedEmail, Role, TemplateRenderer, TenantProfile, TenantScope,
};
use tayori_app::testing::{FakeDeadLetters, RecordingSender};
use tayori_app::{ConsoleSessions, DeliveryPolicy, EventHandler, InboundMessage, SessionPolicy};
use tayori_domain::{DeliveryId, Event, EventType, TenantId};
use tayori_postgres::{
    PostgresActivityBoard, PostgresAdminStore, PostgresStore, PostgresSuppressions,
};
use tayori_templates::TemplateSet;
use tower::ServiceExt;

/// The wall clock.
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

/// The real templates, except that events of `blocked` type are refused as if their template
/// were missing, until `unblock`.
pub struct Templates {
    pub set: Arc<TemplateSet>,
    pub blocked: String,
    pub is_blocked: AtomicBool,
}

impl TemplateRenderer for Templates {
    fn render(&self, tenant: &TenantProfile, event: &Event) -> Result<RenderedEmail, RenderError> {
        if self.is_blocked.load(Ordering::SeqCst) && event.event_type.as_str() == self.blocked {
            return Err(RenderError::NoTemplate {
                tenant: tenant.id.to_string(),
                event_type: self.blocked.clone(),
            });
        }
        self.set.render(tenant, event)
    }
    fn sensitive_variables(&self, tenant: &TenantId, event_type: &EventType) -> Vec<String> {
        self.set.sensitive_variables(tenant, event_type)
    }
    fn message_class(
        &self,
        tenant: &TenantId,
        event_type: &EventType,
    ) -> tayori_app::ports::MessageClass {
        self.set.message_class(tenant, event_type)
    }
}

pub struct Harness {
    pub router: Router,
    pub service: Arc<AdminService>,
    pub handler: Arc<EventHandler>,
    pub sender: Arc<RecordingSender>,
    pub templates: Arc<Templates>,
    pub store: PostgresStore,
    /// The events queue's dead-letter queue: a fake (the SQS adapter has its own tests on
    /// moto).
    pub dead_letters: Arc<FakeDeadLetters>,
    /// The SES feedback queue's.
    pub feedback_dead_letters: Arc<FakeDeadLetters>,
    /// The console's sessions, as the router uses them.
    pub sessions: Arc<ConsoleSessions>,
    /// The session each token signed in to by [`Harness::page`], by token.
    signed_in: Mutex<HashMap<String, String>>,
}

pub fn repo_templates() -> PathBuf {
    manifest_dir().join("../../templates")
}

pub async fn harness() -> Harness {
    // Generous: the router is called in-process, so every test request shares one address.
    harness_with(SignInQuota::per_minute(NonZeroU32::new(1000).unwrap())).await
}

/// A harness whose sign-ins are limited to `quota` (per client address).
pub async fn harness_with(quota: SignInQuota) -> Harness {
    let config = tayori_postgres::testing::fresh_database().await;
    let store = PostgresStore::connect(&config).await.unwrap();
    let set = Arc::new(TemplateSet::load(&repo_templates()).unwrap());
    let templates = Arc::new(Templates {
        set: set.clone(),
        blocked: "account.withdrawal_requested".into(),
        is_blocked: AtomicBool::new(true),
    });
    let sender = Arc::new(RecordingSender::default());
    let dead_letters = Arc::new(FakeDeadLetters::default());
    let feedback_dead_letters = Arc::new(FakeDeadLetters::default());
    let held = Arc::new(tayori_postgres::PostgresHeldEvents::new(store.pool().clone()));
    let handler = Arc::new(EventHandler {
        store: Arc::new(store.clone()),
        tenants: set.clone(),
        suppressions: Arc::new(PostgresSuppressions::new(store.pool().clone())),
        renderer: templates.clone(),
        sender: sender.clone(),
        clock: Arc::new(SystemClock),
        policy: DeliveryPolicy::default(),
        worker_id: "admin-test".into(),
        // As `tayori admin serve` wires it: the shared pauses, never cached, holding a paused
        // tenant's events.
        pauses: tayori_app::handle_event::SendingPauses::with_shared(
            Arc::new(tayori_postgres::PostgresFeedbackStore::new(store.pool().clone())),
            Duration::ZERO,
        )
        .holding_in(held.clone()),
    });
    let service = Arc::new(AdminService {
        deliveries: Arc::new(store.clone()),
        admin: Arc::new(PostgresAdminStore::new(store.pool().clone())),
        handler: handler.clone(),
        previews: set,
        held,
        clock: Arc::new(SystemClock),
        reputation_thresholds: Default::default(),
        dead_letters: tayori_app::admin::DeadLetterQueues {
            events: Some(dead_letters.clone()),
            feedback: Some(feedback_dead_letters.clone()),
        },
        activity: Some(Arc::new(PostgresActivityBoard::new(store.pool().clone()))),
        unknown_send_window: Duration::from_secs(4 * 3600),
    });
    let sessions = Arc::new(ConsoleSessions {
        store: Arc::new(PostgresAdminStore::new(store.pool().clone())),
        tokens: service.token_manager(),
        clock: Arc::new(SystemClock),
        policy: SessionPolicy::default(),
    });
    let router = router(AdminState::new(service.clone(), sessions.clone(), false, quota));
    Harness {
        router,
        service,
        handler,
        sender,
        templates,
        store,
        dead_letters,
        feedback_dead_letters,
        sessions,
        signed_in: Mutex::default(),
    }
}

/// 48 bytes that differ on every call (tests only: not a secure source).
pub fn test_random() -> [u8; 48] {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let seed = format!(
        "{}-{}-{:?}",
        COUNTER.fetch_add(1, Ordering::Relaxed),
        std::process::id(),
        std::time::SystemTime::now()
    );
    let a = Sha256::digest(format!("a{seed}").as_bytes());
    let b = Sha256::digest(format!("b{seed}").as_bytes());
    let mut out = [0u8; 48];
    out[..32].copy_from_slice(&a);
    out[32..].copy_from_slice(&b[..16]);
    out
}

pub fn tenant(name: &str) -> TenantId {
    TenantId::parse(name).unwrap()
}

impl Harness {
    /// A token's secret and id.
    pub async fn token(&self, role: Role, tenants: &[&str]) -> (String, String) {
        let scope = if tenants.is_empty() {
            TenantScope::All
        } else {
            TenantScope::Only(tenants.iter().map(|t| tenant(t)).collect())
        };
        let issued =
            self.service.issue_token(None, role, scope, "test", None, test_random()).await.unwrap();
        (issued.secret, issued.record.token_id)
    }

    /// Handles an event as a worker would; returns its delivery id.
    pub async fn publish(&self, event: &Value) -> DeliveryId {
        let handled =
            self.handler.handle(&InboundMessage::first(event.to_string().into_bytes())).await;
        match handled.unwrap() {
            tayori_app::Handled::Decided { delivery_id, .. }
            | tayori_app::Handled::Duplicate { delivery_id, .. } => delivery_id,
            other => panic!("not decided: {other:?}"),
        }
    }

    /// A request with an optional bearer token and JSON body: the status and the JSON answer
    /// (`Value::Null` when the body is not JSON).
    pub async fn call(
        &self,
        method: &str,
        uri: &str,
        token: Option<&str>,
        body: Option<&Value>,
    ) -> (StatusCode, Value) {
        let mut request = Request::builder().method(method).uri(uri);
        if let Some(token) = token {
            request = request.header(header::AUTHORIZATION, format!("Bearer {token}"));
        }
        let request = match body {
            Some(body) => request
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from(body.to_string()))
                .unwrap(),
            None => request.body(Body::empty()).unwrap(),
        };
        let response = self.router.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let bytes = to_bytes(response.into_body(), 16 * 1024 * 1024).await.unwrap();
        (status, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
    }

    /// A console request as the token's browser makes it: signed in once (by a real sign-in
    /// through the router), then with that session's cookie (and a form body): status, headers,
    /// page. Without a token, no cookie.
    pub async fn page(
        &self,
        method: &str,
        uri: &str,
        secret: Option<&str>,
        form: Option<&str>,
    ) -> (StatusCode, axum::http::HeaderMap, String) {
        let cookie = match secret {
            Some(secret) => Some(self.session_of(secret).await),
            None => None,
        };
        self.raw_page(method, uri, cookie.as_deref(), form, &[], None).await
    }

    /// The session id the token's browser holds (signed in on first use).
    pub async fn session_of(&self, secret: &str) -> String {
        if let Some(id) = self.signed_in.lock().unwrap().get(secret) {
            return id.clone();
        }
        let id = self.sign_in(secret).await.expect("the token signs in");
        self.signed_in.lock().unwrap().insert(secret.to_owned(), id.clone());
        id
    }

    /// The CSRF token of the token's browser session.
    pub async fn csrf(&self, secret: &str) -> String {
        tayori_admin::csrf_token(&self.session_of(secret).await)
    }

    /// Signs in anew (a new session each call): the session id from the cookie, or `None` when
    /// the sign-in was refused.
    pub async fn sign_in(&self, secret: &str) -> Option<String> {
        let form = format!("token={}", form_encode(secret));
        let (status, headers, _) =
            self.raw_page("POST", "/console/sign-in", None, Some(&form), &[], None).await;
        if status != StatusCode::SEE_OTHER {
            return None;
        }
        session_cookie(&headers)
    }

    /// A console request with exactly this cookie value, these extra headers and (when given)
    /// this peer address: status, headers, page.
    pub async fn raw_page(
        &self,
        method: &str,
        uri: &str,
        cookie: Option<&str>,
        form: Option<&str>,
        headers: &[(&str, &str)],
        client: Option<SocketAddr>,
    ) -> (StatusCode, axum::http::HeaderMap, String) {
        let mut request = Request::builder().method(method).uri(uri);
        if let Some(cookie) = cookie {
            request = request
                .header(header::COOKIE, format!("{}={cookie}", tayori_admin::SESSION_COOKIE));
        }
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let mut request = match form {
            Some(form) => request
                .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                .body(Body::from(form.to_owned()))
                .unwrap(),
            None => request.body(Body::empty()).unwrap(),
        };
        if let Some(client) = client {
            request.extensions_mut().insert(axum::extract::ConnectInfo(client));
        }
        let response = self.router.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = to_bytes(response.into_body(), 16 * 1024 * 1024).await.unwrap();
        (status, headers, String::from_utf8_lossy(&bytes).into_owned())
    }
}

/// The session id a response's `Set-Cookie` gives, if any.
pub fn session_cookie(headers: &axum::http::HeaderMap) -> Option<String> {
    let prefix = format!("{}=", tayori_admin::SESSION_COOKIE);
    headers
        .get_all(header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|v| v.strip_prefix(&prefix))
        .map(|rest| rest.split(';').next().unwrap_or_default().to_owned())
}

/// `application/x-www-form-urlencoded` for a value.
pub fn form_encode(raw: &str) -> String {
    raw.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// An acme-invest deposit event (no sensitive variables: resendable).
pub fn invest_deposit(id: &str, email: &str) -> Value {
    serde_json::json!({
        "specversion": "1.0",
        "id": id,
        "source": "acme-invest/accounts",
        "type": "account.deposit_completed",
        "tenant": "acme-invest",
        "data": {
            "to": { "email": email, "name": "山田 太郎", "locale": "ja" },
            "variables": { "amount": 50000, "currency": "JPY", "deposited_at": "2026-11-27T09:58:00+09:00" }
        }
    })
}

/// An acme-bank deposit event (its `balance` is sensitive: stored masked, so not resendable).
pub fn bank_deposit(id: &str, email: &str) -> Value {
    serde_json::json!({
        "specversion": "1.0",
        "id": id,
        "source": "acme-bank/core",
        "type": "account.deposit_completed",
        "tenant": "acme-bank",
        "data": {
            "to": { "email": email, "name": "田中 美咲", "locale": "ja" },
            "variables": {
                "amount": 285400, "depositor": "カ）アクメショウジ", "account_last4": "7702",
                "deposited_at": "2026-11-25T09:00:00+09:00", "balance": 1204733
            }
        }
    })
}

/// An acme-invest withdrawal event: refused while the harness blocks its template.
pub fn invest_withdrawal(id: &str, email: &str) -> Value {
    let dir = repo_templates().join("acme-invest/account.withdrawal_requested/samples");
    let first = std::fs::read_dir(&dir).unwrap().flatten().map(|e| e.path()).min().unwrap();
    let mut data: Value = serde_json::from_str(&std::fs::read_to_string(first).unwrap()).unwrap();
    data["to"]["email"] = Value::String(email.to_owned());
    serde_json::json!({
        "specversion": "1.0",
        "id": id,
        "source": "acme-invest/payments",
        "type": "account.withdrawal_requested",
        "tenant": "acme-invest",
        "data": data,
    })
}

/// Records SES feedback about an email tayori has no delivery of (a bounce for SES message id
/// `ses_message_id`, no tayori tags): kept as unmatched.
pub async fn record_unmatched_feedback(h: &Harness, ses_message_id: &str) {
    use tayori_app::ports::{FeedbackPolicy, FeedbackRecord, FeedbackRecorded, FeedbackStore};
    let bounce = serde_json::json!({
        "eventType": "Bounce",
        "mail": { "messageId": ses_message_id, "destination": ["someone@example.com"] },
        "bounce": {
            "bounceType": "Permanent", "bounceSubType": "General",
            "timestamp": "2026-11-28T09:05:00Z",
            "bouncedRecipients": [{ "emailAddress": "someone@example.com" }],
        },
    });
    let event = tayori_domain::parse_feedback(bounce.to_string().as_bytes()).unwrap();
    let feedback = tayori_postgres::PostgresFeedbackStore::new(h.store.pool().clone());
    let recorded = feedback
        .record_feedback(FeedbackRecord::Event(&event), &FeedbackPolicy::default(), Utc::now())
        .await
        .unwrap();
    assert_eq!(recorded, FeedbackRecorded::Unmatched);
}

/// This package's directory, read when the test runs (cargo sets it): a test binary reused
/// from a build in another checkout must still read this checkout's files.
pub fn manifest_dir() -> std::path::PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map_or_else(|| env!("CARGO_MANIFEST_DIR").into(), std::path::PathBuf::from)
}
