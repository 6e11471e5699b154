//! The console through the router: sign-in and its cookie, CSRF on every form, every page
//! rendering, and hostile input (SQL-ish and HTML/JS payloads in every search field and in
//! event variables) coming out inert.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use axum::http::{StatusCode, header};
use serde_json::json;
use tayori_app::ports::Role;

use common::{harness, invest_deposit, invest_withdrawal};

fn encode(raw: &str) -> String {
    raw.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[tokio::test]
async fn sign_in_sets_a_strict_http_only_cookie_and_pages_need_it() {
    let h = harness().await;
    let (status, headers, _) = h.page("GET", "/console", None, None).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(headers[header::LOCATION], "/console/sign-in");

    let (status, _, page) = h.page("POST", "/console/sign-in", None, Some("token=tyr_wrong")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(page.contains("unknown, revoked or expired"));

    let (secret, _) = h.token(Role::Viewer, &[]).await;
    let (status, headers, _) =
        h.page("POST", "/console/sign-in", None, Some(&format!("token={}", encode(&secret)))).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let cookie = headers[header::SET_COOKIE].to_str().unwrap();
    assert!(cookie.starts_with(&format!("{}=", tayori_admin::SESSION_COOKIE)));
    assert!(!cookie.contains(&secret), "the cookie is a session id, never the token: {cookie}");
    assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"), "{cookie}");

    let (status, headers, page) = h.page("GET", "/console", Some(&secret), None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains("Dashboard"));
    let csp = headers[header::CONTENT_SECURITY_POLICY].to_str().unwrap();
    assert!(csp.contains("script-src 'self'") && csp.contains("frame-ancestors 'none'"));
}

#[tokio::test]
async fn every_page_renders_for_each_role() {
    let h = harness().await;
    let sent = h.publish(&invest_deposit("pages-1", "taro@example.com")).await;
    let rejected = h.publish(&invest_withdrawal("pages-2", "taro@example.com")).await;
    // SES said the mailbox was full: the detail page shows it, the recipient masked by role.
    let bounce = json!({
        "eventType": "Bounce",
        "mail": { "tags": {
            "tayori-tenant": ["acme-invest"], "tayori-delivery-id": [sent.to_string()],
        } },
        "bounce": { "bounceType": "Transient", "bounceSubType": "MailboxFull",
                    "bouncedRecipients": [{ "emailAddress": "taro@example.com" }] },
    });
    let bounce = tayori_domain::parse_feedback(bounce.to_string().as_bytes()).unwrap();
    tayori_app::ports::FeedbackStore::record_feedback(
        &tayori_postgres::PostgresFeedbackStore::new(h.store.pool().clone()),
        tayori_app::ports::FeedbackRecord::Event(&bounce),
        &tayori_app::ports::FeedbackPolicy::default(),
        chrono::Utc::now(),
    )
    .await
    .unwrap();
    for role in [Role::Viewer, Role::Operator, Role::Admin] {
        let (secret, _) = h.token(role, &["acme-invest"]).await;
        for uri in [
            "/console".to_owned(),
            "/console/deliveries".to_owned(),
            "/console/deliveries?recipient=taro%40example.com&status=sent".to_owned(),
            format!("/console/deliveries/{sent}"),
            format!("/console/deliveries/{rejected}"),
            "/console/rejected".to_owned(),
            "/console/dead-letters".to_owned(),
            "/console/suppressions".to_owned(),
            "/console/templates".to_owned(),
            "/console/templates/acme-invest/account.deposit_completed".to_owned(),
            "/console/tenants".to_owned(),
            "/console/tenants?window=week".to_owned(),
            "/console/audit".to_owned(),
        ] {
            let (status, _, page) = h.page("GET", &uri, Some(&secret), None).await;
            assert_eq!(status, StatusCode::OK, "{role}: {uri}: {page}");
            let recipient_shown = page.contains("taro@example.com");
            if uri.contains("recipient=") {
                // The search box echoes what was typed; the results are still masked.
                let masked = page.contains("t***@e***.com");
                assert_eq!(masked, role != Role::Admin, "{role}: {uri}");
                assert!(page.contains("class=\"delivery-link\""), "{role}: {uri}: found");
            } else if uri.starts_with("/console/deliveries") {
                assert_eq!(recipient_shown, role == Role::Admin, "{role}: {uri}");
            } else {
                assert!(!recipient_shown || role == Role::Admin, "{role}: {uri}");
            }
        }
        let (_, _, detail) =
            h.page("GET", &format!("/console/deliveries/{sent}"), Some(&secret), None).await;
        assert_eq!(detail.contains("id=\"resend-form\""), role != Role::Viewer, "{role}");
        assert!(detail.contains("id=\"feedback\"") && detail.contains("MailboxFull"));
        assert!(detail.contains(">bounced</strong>"), "{role}: the feedback status");
    }
    // Another tenant's token: the same 404 page as for an unknown id.
    let (bank, _) = h.token(Role::Admin, &["acme-bank"]).await;
    let (status, _, _) =
        h.page("GET", &format!("/console/deliveries/{sent}"), Some(&bank), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn forms_need_the_csrf_token_and_resend_is_audited() {
    let h = harness().await;
    let id = h.publish(&invest_deposit("csrf-1", "taro@example.com")).await;
    let (secret, token_id) = h.token(Role::Operator, &[]).await;
    let uri = format!("/console/deliveries/{id}/resend");

    for form in ["reason=forged", "csrf=0000&reason=forged"] {
        let (status, _, page) = h.page("POST", &uri, Some(&secret), Some(form)).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{page}");
    }
    assert_eq!(h.sender.sent().len(), 1, "nothing was resent");

    // The token in the page is the one that works.
    let (_, _, page) =
        h.page("GET", &format!("/console/deliveries/{id}"), Some(&secret), None).await;
    let csrf = h.csrf(&secret).await;
    assert!(page.contains(&format!("name=\"csrf\" value=\"{csrf}\"")));
    let (status, headers, _) = h
        .page(
            "POST",
            &uri,
            Some(&secret),
            Some(&format!("csrf={csrf}&reason={}", encode("customer asked <again>"))),
        )
        .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let location = headers[header::LOCATION].to_str().unwrap().to_owned();
    assert!(location.starts_with(&format!("/console/deliveries/{id}?done=")), "{location}");
    assert_eq!(h.sender.sent().len(), 2);
    let (_, _, result) = h.page("GET", &location, Some(&secret), None).await;
    assert!(result.contains("id=\"action-result\""));

    let (_, _, audit) =
        h.page("GET", &format!("/console/audit?object_id={id}"), Some(&secret), None).await;
    assert!(audit.contains("delivery.resend"));
    assert!(audit.contains("customer asked &lt;again&gt;"), "the reason is shown escaped");
    assert!(audit.contains(&token_id[..8]));

    // Sign-out needs it too.
    let (status, _, _) =
        h.page("POST", "/console/sign-out", Some(&secret), Some("csrf=nope")).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, headers, _) =
        h.page("POST", "/console/sign-out", Some(&secret), Some(&format!("csrf={csrf}"))).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert!(headers[header::SET_COOKIE].to_str().unwrap().contains("Max-Age=0"));
}

const PAYLOADS: [&str; 6] = [
    "<script>alert(1)</script>",
    "\"><img src=x onerror=alert(1)>",
    "' or 1=1 --",
    "'; drop table deliveries; --",
    "{{ 7*7 }}{% raw %}",
    "javascript:alert(1)",
];

#[tokio::test]
async fn hostile_input_in_search_fields_and_event_variables_is_inert() {
    let h = harness().await;
    let mut event = invest_deposit("xss-1", "x'or'1'='1@example.com");
    event["data"]["to"]["name"] = json!("<script>alert('name')</script>");
    event["data"]["variables"]["currency"] = json!("<img src=x onerror=alert('var')>");
    // Rendering may reject the odd currency; either way the delivery is stored and shown.
    let id = h.publish(&event).await;
    let (admin, _) = h.token(Role::Admin, &[]).await;

    let (_, _, page) =
        h.page("GET", &format!("/console/deliveries/{id}"), Some(&admin), None).await;
    for raw in ["<script>alert('name')", "<img src=x onerror"] {
        assert!(!page.contains(raw), "{raw} came out raw:\n{page}");
    }
    assert!(page.contains("&lt;script&gt;alert("), "{page}");
    assert!(page.contains("x&#x27;or&#x27;1&#x27;=&#x27;1@example.com"), "{page}");

    // The SQL-ish address is just an address: exact match finds it and nothing else.
    let (status, found) = h
        .call(
            "GET",
            &format!("/api/v1/deliveries?recipient={}", encode("x'or'1'='1@example.com")),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(found["deliveries"].as_array().unwrap().len(), 1);

    let fields = ["recipient", "tenant", "status", "event_type", "from", "until", "after"];
    for payload in PAYLOADS {
        for field in fields {
            let uri = format!("/console/deliveries?{field}={}", encode(payload));
            let (status, _, page) = h.page("GET", &uri, Some(&admin), None).await;
            assert_eq!(status, StatusCode::OK, "{uri}");
            assert!(
                !page.contains("<script>alert(1)") && !page.contains("<img src=x"),
                "{uri}:\n{page}"
            );
            let (status, _) = h
                .call(
                    "GET",
                    &format!("/api/v1/deliveries?{field}={}", encode(payload)),
                    Some(&admin),
                    None,
                )
                .await;
            assert!(
                status == StatusCode::BAD_REQUEST || status == StatusCode::OK,
                "{uri}: {status}"
            );
        }
        for field in ["object_id", "action", "token_id", "tenant"] {
            let uri = format!("/console/audit?{field}={}", encode(payload));
            let (status, _, page) = h.page("GET", &uri, Some(&admin), None).await;
            assert_eq!(status, StatusCode::OK, "{uri}");
            assert!(!page.contains("<script>alert(1)") && !page.contains("<img src=x"), "{uri}");
        }
        let uri = format!("/console/suppressions?address={}", encode(payload));
        let (_, _, page) = h.page("GET", &uri, Some(&admin), None).await;
        assert!(!page.contains("<script>alert(1)") && !page.contains("<img src=x"), "{uri}");
        let uri = format!(
            "/console/templates/acme-invest/account.deposit_completed?sample={}",
            encode(payload)
        );
        let (_, _, page) = h.page("GET", &uri, Some(&admin), None).await;
        assert!(!page.contains("<script>alert(1)") && !page.contains("<img src=x"), "{uri}");
    }
    // Nothing was dropped or matched by the SQL-ish strings.
    let (_, all) = h.call("GET", "/api/v1/deliveries", Some(&admin), None).await;
    assert_eq!(all["deliveries"].as_array().unwrap().len(), 1);
    let (_, none) = h
        .call("GET", &format!("/api/v1/audit?action={}", encode("' or 1=1 --")), Some(&admin), None)
        .await;
    assert!(none.as_array().unwrap().is_empty());
}

#[tokio::test]
async fn the_rejected_page_lists_feedback_that_matched_no_delivery_to_tokens_of_every_tenant() {
    let h = harness().await;
    common::record_unmatched_feedback(&h, "ses-nobody-knows").await;
    let (all, _) = h.token(Role::Viewer, &[]).await;
    let (status, _, page) = h.page("GET", "/console/rejected", Some(&all), None).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert!(page.contains("SES feedback that matched no delivery"), "{page}");
    assert!(page.contains("<code>ses-nobody-knows</code>"), "{page}");
    // It names no tenant: a scoped token does not see it.
    let (scoped, _) = h.token(Role::Admin, &["acme-invest"]).await;
    let (status, _, page) = h.page("GET", "/console/rejected", Some(&scoped), None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(!page.contains("ses-nobody-knows"), "{page}");
}

#[tokio::test]
async fn the_tenants_page_pauses_and_resumes_a_tenant_with_a_reason_and_the_csrf_token() {
    let h = harness().await;
    h.publish(&invest_deposit("tenants-1", "taro@example.com")).await;
    let (viewer, _) = h.token(Role::Viewer, &[]).await;
    let (operator, operator_id) = h.token(Role::Operator, &["acme-invest"]).await;

    // Every tenant of the token, sending, with its rates; forms only for a role that acts.
    let (status, _, page) = h.page("GET", "/console/tenants", Some(&viewer), None).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    for tenant in ["acme-invest", "acme-bank"] {
        assert!(page.contains(&format!("data-tenant=\"{tenant}\"")), "{tenant}: {page}");
    }
    assert!(!page.contains("/pause\""), "a viewer gets no form: {page}");
    let (_, _, page) = h.page("GET", "/console/tenants", Some(&operator), None).await;
    assert!(!page.contains("data-tenant=\"acme-bank\""), "only the token's tenants");
    assert!(page.contains("action=\"/console/tenants/acme-invest/pause\""), "{page}");
    assert_eq!(
        h.page("GET", "/console/tenants?window=year", Some(&operator), None).await.0,
        StatusCode::BAD_REQUEST
    );

    // Without the CSRF token nothing is paused, nor by a viewer with it; with it, an operator
    // pauses, and the page and the dashboard show it.
    let uri = "/console/tenants/acme-invest/pause";
    let form = format!("reason={}", encode("bad <template>"));
    assert_eq!(h.page("POST", uri, Some(&operator), Some(&form)).await.0, StatusCode::FORBIDDEN);
    let viewer_form = format!("csrf={}&{form}", h.csrf(&viewer).await);
    assert_eq!(
        h.page("POST", uri, Some(&viewer), Some(&viewer_form)).await.0,
        StatusCode::FORBIDDEN
    );
    let (_, view) = h.call("GET", "/api/v1/reputation", Some(&viewer), None).await;
    assert_eq!(view["paused"], json!([]));
    let csrf = h.csrf(&operator).await;
    let (status, headers, _) =
        h.page("POST", uri, Some(&operator), Some(&format!("csrf={csrf}&{form}"))).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let location = headers[header::LOCATION].to_str().unwrap().to_owned();
    let (_, _, page) = h.page("GET", &location, Some(&operator), None).await;
    assert!(page.contains("acme-invest is paused"), "{page}");
    assert!(page.contains("bad &lt;template&gt;"), "the reason, escaped: {page}");
    assert!(page.contains(&operator_id[..8]), "who paused it");
    assert!(page.contains("action=\"/console/tenants/acme-invest/resume\""), "{page}");
    let held_link = |n: u32| {
        format!("<a data-held href=\"/console/tenants/acme-invest/held\">events held: {n}</a>")
    };
    assert!(page.contains(&held_link(0)), "{page}");
    // An event of the paused tenant is held, and counted on both pages.
    let deposit = invest_deposit("held-1", "hanako@example.com").to_string();
    let held = h.handler.handle(&tayori_app::InboundMessage::first(deposit.into_bytes())).await;
    assert!(matches!(held, Ok(tayori_app::Handled::Held { .. })), "{held:?}");
    let (_, _, page) = h.page("GET", "/console/tenants", Some(&operator), None).await;
    assert!(page.contains(&format!("{}, the oldest since", held_link(1))), "{page}");
    // The held page: by event type, the event itself (no recipient), the discard form.
    let held_page = "/console/tenants/acme-invest/held";
    let (status, _, held) = h.page("GET", held_page, Some(&viewer), None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(held.contains("<span data-held-total>1 held</span>"), "{held}");
    assert!(held.contains("<code>account.deposit_completed</code></td><td>1</td>"), "{held}");
    assert!(held.contains("<code>held-1</code>"), "{held}");
    assert!(!held.contains("hanako@example.com"), "no recipient on the page");
    assert!(!held.contains("/held/discard"), "a viewer gets no form");
    let (_, _, held) = h.page("GET", held_page, Some(&operator), None).await;
    assert!(held.contains("action=\"/console/tenants/acme-invest/held/discard\""), "{held}");
    assert!(held.contains("data-discard-type=\"account.deposit_completed\""), "one per type");
    let (_, _, dashboard) = h.page("GET", "/console", Some(&viewer), None).await;
    assert!(dashboard.contains("Paused now"), "{dashboard}");
    assert!(dashboard.contains("(1 held)"), "{dashboard}");

    // The held event discarded from the page (its event type's form): recorded rejected,
    // nothing held any more.
    let discard = "/console/tenants/acme-invest/held/discard";
    assert!(page.contains(&format!("action=\"{discard}\"")), "{page}");
    let form = format!(
        "csrf={csrf}&event_type=account.deposit_completed&reason={}",
        encode("wrong amounts")
    );
    let (status, headers, _) = h.page("POST", discard, Some(&operator), Some(&form)).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let location = headers[header::LOCATION].to_str().unwrap().to_owned();
    let (_, _, page) = h.page("GET", &location, Some(&operator), None).await;
    assert!(page.contains("1 held events of account.deposit_completed discarded"), "{page}");
    assert!(page.contains(&held_link(0)), "{page}");
    assert!(!page.contains(&format!("action=\"{discard}\"")), "no form without held events");

    // An empty reason is refused; a reason resumes it.
    let resume = "/console/tenants/acme-invest/resume";
    let (status, _, _) =
        h.page("POST", resume, Some(&operator), Some(&format!("csrf={csrf}&reason="))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, headers, _) =
        h.page("POST", resume, Some(&operator), Some(&format!("csrf={csrf}&reason=fixed"))).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let location = headers[header::LOCATION].to_str().unwrap().to_owned();
    let (_, _, page) = h.page("GET", &location, Some(&operator), None).await;
    assert!(page.contains("acme-invest is sending again"), "{page}");
    let (_, _, dashboard) = h.page("GET", "/console", Some(&viewer), None).await;
    assert!(!dashboard.contains("Paused now"));
}

#[tokio::test]
async fn the_deliveries_page_resends_a_windows_failed_deliveries_a_page_at_a_time() {
    let h = harness().await;
    let reject =
        || tayori_app::ports::SendError::Rejected { reason: "NotFound: configuration set".into() };
    h.sender.fail_next(vec![reject(), reject()]);
    let failed = [
        h.publish(&invest_deposit("page-bulk-1", "ichiro@example.com")).await,
        h.publish(&invest_deposit("page-bulk-2", "jiro@example.com")).await,
    ];
    let (viewer, _) = h.token(Role::Viewer, &[]).await;
    let (operator, _) = h.token(Role::Operator, &["acme-invest"]).await;
    let csrf = h.csrf(&operator).await;
    let from = (chrono::Utc::now() - chrono::Duration::minutes(5))
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);

    // The form shows for an operator searching one tenant's failures from a start time; the
    // open end is fixed at the time of the search.
    let search =
        format!("/console/deliveries?tenant=acme-invest&status=failed&from={}", encode(&from));
    let (_, _, page) = h.page("GET", &search, Some(&viewer), None).await;
    assert!(!page.contains("id=\"resend-failed\""), "a viewer gets no form");
    let (_, _, page) = h.page("GET", &search, Some(&operator), None).await;
    assert!(page.contains("id=\"resend-failed\""), "{page}");
    let until = page
        .split("name=\"until\" value=\"")
        .nth(2)
        .and_then(|rest| rest.split('"').next())
        .expect("the form's fixed end")
        .to_owned();
    assert!(chrono::DateTime::parse_from_rfc3339(&until).is_ok(), "{until}");
    let no_start = "/console/deliveries?tenant=acme-invest&status=failed";
    let (_, _, page) = h.page("GET", no_start, Some(&operator), None).await;
    assert!(page.contains("id=\"resend-failed-hint\"") && !page.contains("id=\"resend-failed\""));

    let form = |csrf: &str| {
        format!(
            "csrf={csrf}&tenant=acme-invest&event_type=&from={}&until={}&reason={}",
            encode(&from),
            encode(&until),
            encode("configuration set restored")
        )
    };
    let uri = "/console/deliveries/resend-failed";
    let (status, _, _) = h.page("POST", uri, Some(&operator), Some(&form("0000"))).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(h.sender.sent().is_empty());

    let (status, _, page) = h.page("POST", uri, Some(&operator), Some(&form(&csrf))).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert!(page.contains("2 of 2 taken were resent"), "{page}");
    for origin in &failed {
        assert!(page.contains(&format!("/console/deliveries/{origin}")), "{page}");
    }
    assert!(page.contains("class=\"status-sent\""), "{page}");
    assert!(page.contains("id=\"resend-done\""), "{page}");
    assert_eq!(h.sender.sent().len(), 2);

    // Again: nothing left, nothing sent.
    let (_, _, page) = h.page("POST", uri, Some(&operator), Some(&form(&csrf))).await;
    assert!(page.contains("id=\"nothing-to-resend\""), "{page}");
    assert_eq!(h.sender.sent().len(), 2);
    let left = format!("{search}&not_resent=true");
    let (_, _, page) = h.page("GET", &left, Some(&operator), None).await;
    assert!(page.contains("id=\"no-results\""), "{page}");

    // A resend SES throttles is said to be undecided; the same form again finishes it. (A
    // window of its own: the one above ended at the second of its search.)
    h.sender.fail_next(vec![reject()]);
    h.publish(&invest_deposit("page-bulk-3", "saburo@example.com")).await;
    h.sender.fail_next(vec![tayori_app::ports::SendError::Throttled {
        reason: "Maximum sending rate exceeded".into(),
        retry_after: None,
    }]);
    let later = (chrono::Utc::now() + chrono::Duration::minutes(1))
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let form = form(&csrf)
        .replace(&format!("until={}", encode(&until)), &format!("until={}", encode(&later)));
    let (_, _, page) = h.page("POST", uri, Some(&operator), Some(&form)).await;
    assert!(page.contains("0 of 1 taken were resent"), "{page}");
    assert!(page.contains("id=\"resent-undecided\""), "{page}");
    // The tenant waits out SES's throttling (1 s without a hint) before its next send.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let (_, _, page) = h.page("POST", uri, Some(&operator), Some(&form)).await;
    assert!(page.contains("1 of 1 taken were resent"), "{page}");
    assert!(!page.contains("id=\"resent-undecided\""), "{page}");
    assert_eq!(h.sender.sent().len(), 3);
}

#[tokio::test]
async fn the_dead_letters_page_shows_events_inertly_and_redrives_with_a_reason() {
    let h = harness().await;
    let now = chrono::Utc::now();
    let deposit = invest_deposit("dead-page-1", "taro@example.com").to_string();
    h.dead_letters.add("m-1", deposit.as_bytes(), now);
    let hostile =
        r#"{"specversion": "1.0", "id": "<script>alert(1)</script>", "tenant": "<b>x</b>"}"#;
    h.dead_letters.add("m-2", hostile.as_bytes(), now);
    let (viewer, _) = h.token(Role::Viewer, &[]).await;
    let (scoped, _) = h.token(Role::Operator, &["acme-invest"]).await;
    let (operator, _) = h.token(Role::Operator, &[]).await;
    let csrf = h.csrf(&operator).await;

    let (status, _, page) = h.page("GET", "/console/dead-letters", Some(&viewer), None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains("<strong id=\"dead-letters-depth\">2</strong>"), "{page}");
    assert!(page.contains("<code>dead-page-1</code>"), "{page}");
    assert!(page.contains("unreadable: "), "{page}");
    assert!(!page.contains("<script>alert(1)</script>") && !page.contains("<b>x</b>"), "{page}");
    assert!(!page.contains("taro@example.com"), "never the body");
    assert!(!page.contains("id=\"redrive-form\""), "a viewer cannot redrive");
    let (_, _, page) = h.page("GET", "/console/dead-letters", Some(&scoped), None).await;
    assert!(!page.contains("dead-letters-depth") && !page.contains("id=\"redrive-form\""));
    assert!(page.contains("<code>dead-page-1</code>") && !page.contains("unreadable"), "{page}");

    let (_, _, page) = h.page("GET", "/console/dead-letters", Some(&operator), None).await;
    assert!(page.contains("id=\"redrive-form\""), "{page}");
    let uri = "/console/dead-letters/redrive";
    let (status, _, _) =
        h.page("POST", uri, Some(&operator), Some("csrf=0000&max=2&reason=fixed")).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let form = format!("csrf={csrf}&max=2&reason={}", encode("database back"));
    let (status, headers, _) = h.page("POST", uri, Some(&operator), Some(&form)).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let location = headers[header::LOCATION].to_str().unwrap().to_owned();
    let (_, _, page) = h.page("GET", &location, Some(&operator), None).await;
    assert!(page.contains("2 dead letters moved back to the events queue."), "{page}");
    assert!(page.contains("id=\"no-dead-letters\""), "{page}");
    assert_eq!(h.dead_letters.redriven().len(), 2);

    // The SES feedback queue's tab: an unreadable notification, shown inertly.
    h.feedback_dead_letters.add("f-1", b"<img src=x onerror=alert(1)>", now);
    let (status, _, page) =
        h.page("GET", "/console/dead-letters?queue=feedback", Some(&operator), None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains("SES notifications") && page.contains("unreadable: "), "{page}");
    assert!(!page.contains("<img src=x"), "{page}");
    assert!(page.contains("Redrive to the feedback queue"), "{page}");
}

#[tokio::test]
async fn the_tenants_page_shows_what_the_running_workers_say_each_tenant_is_doing() {
    use tayori_app::ports::{ActivityBoard, TenantActivity};
    let h = harness().await;
    let board = tayori_postgres::PostgresActivityBoard::new(h.store.pool().clone());
    let now = chrono::Utc::now();
    let activity = |tenant: &str, in_flight, waiting, rate, hand_backs| TenantActivity {
        tenant: tenant.into(),
        in_flight,
        waiting,
        slots: 50,
        send_rate: rate,
        hand_backs,
        workers: 1,
    };
    let first = [activity("acme-invest", 50, 20, 12.5, 300), activity("acme-bank", 3, 0, 4.0, 0)];
    board.publish("worker-a/1", now, &first).await.unwrap();
    board.publish("worker-b/2", now, &[activity("acme-invest", 40, 0, 10.0, 12)]).await.unwrap();

    let (viewer, _) = h.token(Role::Viewer, &[]).await;
    let (_, _, page) = h.page("GET", "/console/tenants", Some(&viewer), None).await;
    assert!(
        page.contains("90 in flight of 100 slots, 20 waiting; 22.5/s; 312 handed back"),
        "summed over both workers: {page}"
    );
    assert!(page.contains("3 in flight of 50 slots; 4.0/s; 0 handed back"), "{page}");

    // A token of one tenant sees that tenant's only; a tenant no worker reports is idle.
    let (scoped, _) = h.token(Role::Viewer, &["acme-bank"]).await;
    let (_, _, page) = h.page("GET", "/console/tenants", Some(&scoped), None).await;
    assert!(page.contains("3 in flight of 50 slots"), "{page}");
    assert!(!page.contains("90 in flight"), "{page}");
    board.withdraw("worker-a/1").await.unwrap();
    let (_, _, page) = h.page("GET", "/console/tenants", Some(&scoped), None).await;
    assert!(page.contains("<span class=\"muted\">idle</span>"), "{page}");
}

/// A handler answers its errors with `?`; the error page is still drawn inside the signed-in
/// frame (navigation, who, the sign-out form with this session's CSRF token), with the status,
/// code and message the API would give and the console's security headers.
#[tokio::test]
async fn error_pages_keep_the_signed_in_frame() {
    let h = harness().await;
    let (secret, token_id) = h.token(Role::Operator, &[]).await;
    let csrf = h.csrf(&secret).await;
    let unknown = "/console/deliveries/00000000-0000-4000-8000-000000000000";
    let bad_form = format!("/console/deliveries/{}/resend", "00000000-0000-4000-8000-000000000000");
    let cases = [
        ("GET", unknown.to_owned(), None, StatusCode::NOT_FOUND, "not_found"),
        (
            "GET",
            "/console/deliveries/not-a-uuid".to_owned(),
            None,
            StatusCode::BAD_REQUEST,
            "bad_request",
        ),
        ("POST", bad_form, Some("csrf=nope&reason=x"), StatusCode::FORBIDDEN, "forbidden"),
        (
            "GET",
            "/console/tenants?window=year".to_owned(),
            None,
            StatusCode::BAD_REQUEST,
            "bad_request",
        ),
    ];
    for (method, uri, form, status, code) in cases {
        let (got, headers, page) = h.page(method, &uri, Some(&secret), form).await;
        assert_eq!(got, status, "{uri}: {page}");
        assert!(page.contains(&format!("{} · {code}", status.as_u16())), "{uri}: {page}");
        assert!(page.contains("id=\"error-message\""), "{uri}");
        assert!(page.contains("href=\"/console/deliveries\""), "{uri}: the navigation");
        assert!(page.contains(&token_id[..8]), "{uri}: who is signed in");
        assert!(page.contains(&format!("value=\"{csrf}\"")), "{uri}: the sign-out form");
        assert!(headers.contains_key(header::CONTENT_SECURITY_POLICY), "{uri}");
        assert_eq!(headers[header::CACHE_CONTROL], "no-store", "{uri}");
    }
    // Without a session there is no frame to keep: the visitor is sent to sign in.
    let (status, headers, _) = h.page("GET", unknown, None, None).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(headers[header::LOCATION], "/console/sign-in");
}
