//! Console sessions through the router on a real PostgreSQL: the cookie is an opaque session id
//! stored hashed, sessions end at sign-out, when idle, at their absolute expiry and with their
//! token; CSRF tokens are per session; sign-in refuses cross-site posts, is throttled per client
//! address, and every attempt is audited with that address.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::net::SocketAddr;
use std::num::NonZeroU32;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use sha2::{Digest, Sha256};
use tayori_admin::{AdminState, SignInQuota, router};
use tayori_app::Principal;
use tayori_app::ports::{AuditQuery, Role};
use tower::ServiceExt;

use common::{Harness, form_encode, harness, harness_with, session_cookie};

async fn sessions_in_db(h: &Harness) -> Vec<(String, String)> {
    sqlx::query_as::<_, (String, String)>(
        "select session_sha256, token_id::text from console_sessions order by created_at",
    )
    .fetch_all(h.store.pool())
    .await
    .unwrap()
}

/// GET /console with this cookie: whether it is served (true) or sent to sign in (false).
async fn signed_in(h: &Harness, session: &str) -> bool {
    let (status, headers, _) = h.raw_page("GET", "/console", Some(session), None, &[], None).await;
    match status {
        StatusCode::OK => true,
        StatusCode::SEE_OTHER => {
            assert_eq!(headers[header::LOCATION], "/console/sign-in");
            false
        }
        other => panic!("unexpected {other}"),
    }
}

/// The CSRF token a page of this session carries in its forms.
async fn csrf_on_page(h: &Harness, session: &str) -> String {
    let (_, _, page) = h.raw_page("GET", "/console", Some(session), None, &[], None).await;
    let at = page.find("name=\"csrf\" value=\"").expect("a form with a CSRF token") + 19;
    page[at..at + 64].to_owned()
}

async fn audit(h: &Harness, action: &str) -> Vec<tayori_app::ports::AuditRecord> {
    let query = AuditQuery { action: Some(action.into()), limit: 100, ..Default::default() };
    h.service.audit(&Principal::command_line(), None, query).await.unwrap()
}

#[tokio::test]
async fn the_cookie_is_a_random_session_id_kept_only_hashed_with_strict_flags() {
    let h = harness().await;
    let (secret, token_id) = h.token(Role::Viewer, &[]).await;
    let form = format!("token={}", form_encode(&secret));
    let (status, headers, _) =
        h.raw_page("POST", "/console/sign-in", None, Some(&form), &[], None).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let cookie = headers[header::SET_COOKIE].to_str().unwrap().to_owned();
    let session = session_cookie(&headers).unwrap();
    assert_eq!(session.len(), 64, "32 random bytes, hex: {session}");
    assert!(session.bytes().all(|b| b.is_ascii_hexdigit()));
    assert!(!cookie.contains(&secret) && !cookie.contains(&secret["tyr_".len()..]));
    for flag in ["HttpOnly", "SameSite=Strict", "Path=/console"] {
        assert!(cookie.contains(flag), "{flag} missing: {cookie}");
    }
    // This harness stands for a loopback listener: not Secure.
    assert!(!cookie.contains("Secure"), "{cookie}");

    // The database has the SHA-256 of the id, never the id, with the token it belongs to.
    let stored = sessions_in_db(&h).await;
    assert_eq!(stored.len(), 1);
    assert_ne!(stored[0].0, session);
    assert_eq!(stored[0].0, hex::encode(Sha256::digest(session.as_bytes())));
    assert_eq!(stored[0].1, token_id);
    assert!(signed_in(&h, &session).await);
    // The token itself is no cookie any more.
    assert!(!signed_in(&h, &secret).await);
    // A second sign-in of the same token is another session.
    let again = h.sign_in(&secret).await.unwrap();
    assert_ne!(again, session);
    assert_eq!(sessions_in_db(&h).await.len(), 2);
}

#[tokio::test]
async fn the_cookie_is_secure_when_the_state_says_so() {
    // `tayori admin serve` says so everywhere but on a loopback listener (its unit tests).
    let h = harness().await;
    let (secret, _) = h.token(Role::Viewer, &[]).await;
    let quota = SignInQuota::per_minute(NonZeroU32::new(10).unwrap());
    let app = router(AdminState::new(h.service.clone(), h.sessions.clone(), true, quota));
    let request = Request::post("/console/sign-in")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Body::from(format!("token={}", form_encode(&secret))))
        .unwrap();
    let response = app.oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let cookie = response.headers()[header::SET_COOKIE].to_str().unwrap();
    assert!(cookie.contains("; Secure") && cookie.contains("HttpOnly"), "{cookie}");
}

#[tokio::test]
async fn a_signed_out_session_replayed_goes_to_sign_in() {
    let h = harness().await;
    let (secret, _) = h.token(Role::Operator, &[]).await;
    let session = h.sign_in(&secret).await.unwrap();
    let other = h.sign_in(&secret).await.unwrap();
    assert!(signed_in(&h, &session).await);
    let csrf = csrf_on_page(&h, &session).await;
    let (status, headers, _) = h
        .raw_page(
            "POST",
            "/console/sign-out",
            Some(&session),
            Some(&format!("csrf={csrf}")),
            &[],
            None,
        )
        .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert!(headers[header::SET_COOKIE].to_str().unwrap().contains("Max-Age=0"));
    // The browser forgot it; a copy of it (a stolen cookie, the back button) is refused.
    assert!(!signed_in(&h, &session).await);
    let forms = [("/console/suppressions", "tenant=acme-invest&address=a%40b.c&reason=x")];
    for (uri, form) in forms {
        let form = format!("csrf={csrf}&{form}");
        let (status, headers, _) =
            h.raw_page("POST", uri, Some(&session), Some(&form), &[], None).await;
        assert_eq!(status, StatusCode::SEE_OTHER);
        assert_eq!(headers[header::LOCATION], "/console/sign-in");
    }
    let stored = sessions_in_db(&h).await;
    assert_eq!(stored.len(), 1, "only the other session is left");
    assert_ne!(stored[0].0, hex::encode(Sha256::digest(session.as_bytes())));
    // Signing out one session leaves the token's other sessions alone.
    assert!(signed_in(&h, &other).await);
}

#[tokio::test]
async fn idle_and_absolutely_expired_sessions_are_refused_and_removed() {
    let h = harness().await;
    let (secret, _) = h.token(Role::Viewer, &[]).await;
    let idle = h.sign_in(&secret).await.unwrap();
    let old = h.sign_in(&secret).await.unwrap();
    let recent = h.sign_in(&secret).await.unwrap();
    let set = |session: &str, column: &str, age: &str| {
        let sql = format!(
            "update console_sessions set {column} = now() - interval '{age}' \
             where session_sha256 = $1"
        );
        let hash = hex::encode(Sha256::digest(session.as_bytes()));
        let pool = h.store.pool().clone();
        async move {
            let done =
                sqlx::query(sqlx::AssertSqlSafe(sql)).bind(hash).execute(&pool).await.unwrap();
            assert_eq!(done.rows_affected(), 1);
        }
    };
    // Idle for 31 minutes (the default allows 30).
    set(&idle, "last_seen_at", "31 minutes").await;
    // Signed in 12 hours and a minute ago, used a moment ago.
    set(&old, "created_at", "12 hours 1 minute").await;
    // Idle for 29 minutes, signed in 11 hours ago: still alive.
    set(&recent, "last_seen_at", "29 minutes").await;
    set(&recent, "created_at", "11 hours").await;

    assert!(!signed_in(&h, &idle).await, "idle expiry");
    assert!(!signed_in(&h, &old).await, "absolute expiry");
    assert!(signed_in(&h, &recent).await);
    assert_eq!(sessions_in_db(&h).await.len(), 1, "the expired ones are deleted when seen");

    // Use moves the idle clock: the 29 minutes start again.
    let seen: f64 = sqlx::query_scalar(
        "select extract(epoch from now() - last_seen_at)::float8 from console_sessions",
    )
    .fetch_one(h.store.pool())
    .await
    .unwrap();
    assert!(seen < 60.0, "last seen {seen} s ago");

    // Expired sessions nobody comes back to are pruned at the next sign-in.
    set(&recent, "last_seen_at", "2 hours").await;
    let fresh = h.sign_in(&secret).await.unwrap();
    let stored = sessions_in_db(&h).await;
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].0, hex::encode(Sha256::digest(fresh.as_bytes())));
}

#[tokio::test]
async fn a_revoked_tokens_sessions_end_at_once() {
    let h = harness().await;
    let (secret, token_id) = h.token(Role::Admin, &[]).await;
    let session = h.sign_in(&secret).await.unwrap();
    assert!(signed_in(&h, &session).await);
    h.service.revoke_token(None, &token_id).await.unwrap();
    assert!(!signed_in(&h, &session).await);
    assert!(sessions_in_db(&h).await.is_empty());
    assert_eq!(h.sign_in(&secret).await, None);
}

#[tokio::test]
async fn cross_site_sign_ins_are_refused_and_sign_nothing_in() {
    let h = harness().await;
    let (secret, _) = h.token(Role::Admin, &[]).await;
    let form = format!("token={}", form_encode(&secret));
    let host = ("host", "admin.example.com");
    let refused: [&[(&str, &str)]; 6] = [
        &[host, ("origin", "https://evil.example")],
        &[host, ("origin", "https://admin.example.com.evil.example")],
        &[host, ("sec-fetch-site", "cross-site"), ("origin", "https://admin.example.com")],
        &[host, ("sec-fetch-site", "same-site")],
        &[host, ("referer", "https://evil.example/admin.example.com/console")],
        // An opaque origin (a sandboxed frame, a data: page) with nothing else to go by.
        &[host, ("origin", "null")],
    ];
    for headers in refused {
        let (status, response, page) =
            h.raw_page("POST", "/console/sign-in", None, Some(&form), headers, None).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{headers:?}");
        assert!(response.get(header::SET_COOKIE).is_none(), "{headers:?}");
        assert!(page.contains("Sign in from this console"), "{headers:?}");
    }
    assert!(sessions_in_db(&h).await.is_empty(), "nothing was signed in");
    assert!(audit(&h, "console.sign_in").await.is_empty());

    let accepted: [&[(&str, &str)]; 5] = [
        // What a browser sends from the console's own page (served with no-referrer).
        &[host, ("sec-fetch-site", "same-origin"), ("origin", "null")],
        &[host, ("origin", "https://admin.example.com")],
        &[("host", "Admin.Example.com:8443"), ("origin", "https://admin.example.com:8443")],
        &[host, ("referer", "https://admin.example.com/console/sign-in")],
        // curl or a script: no browser, no cookies of anyone's to abuse.
        &[host],
    ];
    for headers in accepted {
        let (status, response, _) =
            h.raw_page("POST", "/console/sign-in", None, Some(&form), headers, None).await;
        assert_eq!(status, StatusCode::SEE_OTHER, "{headers:?}");
        assert!(session_cookie(&response).is_some());
    }
    assert_eq!(sessions_in_db(&h).await.len(), 5);
}

#[tokio::test]
async fn csrf_tokens_are_per_session_and_one_sessions_is_refused_on_another() {
    let h = harness().await;
    let (secret, _) = h.token(Role::Operator, &[]).await;
    let first = h.sign_in(&secret).await.unwrap();
    let second = h.sign_in(&secret).await.unwrap();
    let (csrf1, csrf2) = (csrf_on_page(&h, &first).await, csrf_on_page(&h, &second).await);
    assert_ne!(csrf1, csrf2, "two sessions of one token");
    // Not derived from the token (as it was): knowing the token's old CSRF value helps nothing.
    assert_ne!(csrf1, tayori_admin::csrf_token(&secret));
    assert_eq!(csrf1, csrf_on_page(&h, &first).await, "stable within a session");

    let add =
        |csrf: &str| format!("csrf={csrf}&tenant=acme-invest&address=x%40example.com&reason=r");
    let (status, _, page) = h
        .raw_page("POST", "/console/suppressions", Some(&second), Some(&add(&csrf1)), &[], None)
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(page.contains("the form expired or came from elsewhere"));
    let (status, _, _) = h
        .raw_page(
            "POST",
            "/console/sign-out",
            Some(&second),
            Some(&format!("csrf={csrf1}")),
            &[],
            None,
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(signed_in(&h, &second).await, "the forged sign-out did nothing");
    assert!(audit(&h, "suppression.add").await.is_empty());

    let (status, _, _) = h
        .raw_page("POST", "/console/suppressions", Some(&second), Some(&add(&csrf2)), &[], None)
        .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(audit(&h, "suppression.add").await.len(), 1);
}

#[tokio::test]
async fn sign_ins_are_throttled_per_address_and_every_attempt_is_audited_with_it() {
    const LIMIT: u32 = 4;
    let h = harness_with(SignInQuota::per_minute(NonZeroU32::new(LIMIT).unwrap())).await;
    let (secret, token_id) = h.token(Role::Viewer, &[]).await;
    let attacker: SocketAddr = "192.0.2.7:41234".parse().unwrap();
    let operator: SocketAddr = "198.51.100.9:50000".parse().unwrap();
    let try_sign_in = |token: String, from: SocketAddr| {
        let h = &h;
        async move {
            let form = format!("token={}", form_encode(&token));
            h.raw_page("POST", "/console/sign-in", None, Some(&form), &[], Some(from)).await
        }
    };

    for n in 0..LIMIT {
        let (status, _, page) = try_sign_in(format!("tyr_guess{n}"), attacker).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "attempt {n}");
        assert!(page.contains("unknown, revoked or expired"));
    }
    // The quota is spent: even the right token waits now, and nothing is looked up.
    let (status, headers, page) = try_sign_in(secret.clone(), attacker).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert!(page.contains("Too many sign-in attempts"));
    assert!(headers.get(header::SET_COOKIE).is_none());
    let (status, _, _) = try_sign_in("tyr_guess-more".into(), attacker).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);

    // Another address is not held back.
    let (status, _, _) = try_sign_in(secret.clone(), operator).await;
    assert_eq!(status, StatusCode::SEE_OTHER);

    // The failures are in the audit log with the address (never the token tried), newest first.
    let failed = audit(&h, "console.sign_in_failed").await;
    assert_eq!(failed.len(), LIMIT as usize, "throttled attempts are not looked up");
    for record in &failed {
        assert_eq!(record.entry.detail["client"], "192.0.2.7");
        assert_eq!(record.entry.token_id, tayori_app::console_sessions::ANONYMOUS_TOKEN_ID);
        assert_eq!(record.entry.role, "anonymous");
        assert!(!record.entry.detail.to_string().contains("tyr_guess"));
    }
    // The success too, under the token that signed in.
    let ok = audit(&h, "console.sign_in").await;
    assert_eq!(ok.len(), 1);
    assert_eq!(ok[0].entry.detail["client"], "198.51.100.9");
    assert_eq!(ok[0].entry.token_id, token_id);
    assert_eq!(ok[0].entry.object_id.as_deref(), Some(token_id.as_str()));
}
