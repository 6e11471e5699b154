//! What operators do through the API, against real PostgreSQL and the repository's templates:
//! search and page through deliveries, read one (masked by role), resend it, replay a rejected
//! event after its template is added, suppress an address (and see the worker honour it), pause
//! and resume a tenant (and see the event path wait), count, and read the audit log.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeSet;
use std::sync::atomic::Ordering;

use axum::http::StatusCode;
use serde_json::json;
use tayori_app::ports::Role;

use common::{bank_deposit, harness, invest_deposit, invest_withdrawal};

#[tokio::test]
async fn search_filters_and_keyset_pages_see_every_delivery_once() {
    let h = harness().await;
    let (admin, _) = h.token(Role::Admin, &[]).await;
    let mut ids = BTreeSet::new();
    for i in 0..23 {
        let email = if i % 2 == 0 { "even@example.com" } else { "odd@example.com" };
        ids.insert(h.publish(&invest_deposit(&format!("page-{i}"), email)).await.to_string());
    }
    h.publish(&bank_deposit("bank-1", "even@example.com")).await;
    h.publish(&invest_withdrawal("rej-1", "even@example.com")).await;

    // Pages of 5, following `next`, see each of the 23 invest deposits exactly once.
    let mut seen = Vec::new();
    let mut uri =
        "/api/v1/deliveries?tenant=acme-invest&event_type=account.deposit_completed&limit=5"
            .to_owned();
    loop {
        let (status, page) = h.call("GET", &uri, Some(&admin), None).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        for d in page["deliveries"].as_array().unwrap() {
            seen.push(d["delivery_id"].as_str().unwrap().to_owned());
        }
        match page["next"].as_str() {
            Some(next) => {
                uri = format!(
                    "/api/v1/deliveries?tenant=acme-invest&event_type=account.deposit_completed&limit=5&after={next}"
                )
            }
            None => break,
        }
    }
    assert_eq!(seen.len(), 23);
    assert_eq!(seen.iter().cloned().collect::<BTreeSet<_>>(), ids);

    // Recipient: exact match (case of the domain does not matter: addresses are normalised).
    let (_, odd) = h
        .call("GET", "/api/v1/deliveries?recipient=odd@EXAMPLE.com&limit=500", Some(&admin), None)
        .await;
    assert_eq!(odd["deliveries"].as_array().unwrap().len(), 11);
    assert!(
        odd["deliveries"].as_array().unwrap().iter().all(|d| d["recipient"] == "odd@example.com")
    );
    let (_, partial) =
        h.call("GET", "/api/v1/deliveries?recipient=od@example.com", Some(&admin), None).await;
    assert!(partial["deliveries"].as_array().unwrap().is_empty());

    // Status and tenant.
    let (_, rejected) =
        h.call("GET", "/api/v1/deliveries?status=rejected", Some(&admin), None).await;
    assert_eq!(rejected["deliveries"].as_array().unwrap().len(), 1);
    assert!(rejected["deliveries"][0]["reason"].as_str().unwrap().contains("no template"));
    let (_, bank) = h.call("GET", "/api/v1/deliveries?tenant=acme-bank", Some(&admin), None).await;
    assert_eq!(bank["deliveries"].as_array().unwrap().len(), 1);

    // Time range: nothing before the first, everything in a window around now.
    let (_, past) =
        h.call("GET", "/api/v1/deliveries?until=2000-01-01T00:00:00Z", Some(&admin), None).await;
    assert!(past["deliveries"].as_array().unwrap().is_empty());
    let from = (chrono::Utc::now() - chrono::Duration::minutes(5))
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let (_, recent) = h
        .call("GET", &format!("/api/v1/deliveries?from={from}&limit=500"), Some(&admin), None)
        .await;
    assert_eq!(recent["deliveries"].as_array().unwrap().len(), 25);

    // Bad input says what to fix.
    for bad in [
        "status=lost",
        "recipient=not-an-address",
        "from=yesterday",
        "after=garbage",
        "tenant=../etc",
    ] {
        let (status, body) =
            h.call("GET", &format!("/api/v1/deliveries?{bad}"), Some(&admin), None).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}: {body}");
        assert_eq!(body["error"], "bad_request");
    }
}

#[tokio::test]
async fn detail_shows_event_attempts_and_masks_by_role() {
    let h = harness().await;
    let id = h.publish(&bank_deposit("detail-1", "misaki.tanaka@example.com")).await;
    let (admin, _) = h.token(Role::Admin, &[]).await;
    let (viewer, _) = h.token(Role::Viewer, &[]).await;

    let (status, full) =
        h.call("GET", &format!("/api/v1/deliveries/{id}"), Some(&admin), None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(full["recipient"], "misaki.tanaka@example.com");
    assert_eq!(full["status"], "sent");
    assert_eq!(full["provider_message_id"], "fake-1");
    assert!(full["subject"].as_str().unwrap().contains("入金"), "{}", full["subject"]);
    assert_eq!(full["attempts"][0]["result"], "accepted");
    assert_eq!(full["attempts"][0]["detail"], "fake-1");
    assert_eq!(full["event"]["data"]["to"]["email"], "misaki.tanaka@example.com");
    // The sensitive variable was never stored.
    assert_eq!(full["event"]["data"]["variables"]["balance"], "***");
    assert_eq!(full["event"]["data"]["variables"]["amount"], 285400);
    assert!(full["not_resendable"].as_str().unwrap().contains("balance"));

    let (_, masked) = h.call("GET", &format!("/api/v1/deliveries/{id}"), Some(&viewer), None).await;
    assert_eq!(masked["recipient"], "m***@e***.com");
    assert_eq!(masked["event"]["data"]["to"]["email"], "m***@e***.com");
    assert_eq!(masked["event"]["data"]["to"]["name"], "***");
    let text = masked.to_string();
    assert!(!text.contains("misaki.tanaka"), "{text}");
    let (_, list) = h.call("GET", "/api/v1/deliveries", Some(&viewer), None).await;
    assert_eq!(list["deliveries"][0]["recipient"], "m***@e***.com");
}

#[tokio::test]
async fn resend_makes_a_linked_delivery_through_the_send_path_and_is_audited() {
    let h = harness().await;
    let origin = h.publish(&invest_deposit("resend-1", "taro@example.com")).await;
    let (operator, operator_id) = h.token(Role::Operator, &["acme-invest"]).await;
    let uri = format!("/api/v1/deliveries/{origin}/resend");

    let (status, body) =
        h.call("POST", &uri, Some(&operator), Some(&json!({ "reason": " " }))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "a reason is required: {body}");
    assert_eq!(h.sender.sent().len(), 1);

    let (status, first) = h
        .call("POST", &uri, Some(&operator), Some(&json!({ "reason": "customer never got it" })))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{first}");
    assert_eq!(first["status"], "sent");
    let (_, second) =
        h.call("POST", &uri, Some(&operator), Some(&json!({ "reason": "again" }))).await;
    assert_ne!(first["delivery_id"], second["delivery_id"]);
    let sent = h.sender.sent();
    assert_eq!(sent.len(), 3, "two resends went through the sender");
    assert_eq!(sent[1].to.address.as_str(), "taro@example.com");
    assert_eq!(sent[1].subject, sent[0].subject);

    // The new delivery's key is derived from the original: tayori:resend / <origin>:<n>.
    let new_id = first["delivery_id"].as_str().unwrap();
    let (_, detail) =
        h.call("GET", &format!("/api/v1/deliveries/{new_id}"), Some(&operator), None).await;
    assert_eq!(detail["source"], "tayori:resend");
    assert_eq!(detail["event_id"], format!("{origin}:1"));
    assert_eq!(detail["links"][0]["origin"], origin.to_string());
    let (_, original) =
        h.call("GET", &format!("/api/v1/deliveries/{origin}"), Some(&operator), None).await;
    let links = original["links"].as_array().unwrap();
    assert_eq!(links.len(), 2);
    assert_eq!(links[0]["kind"], "resend");
    assert_eq!(links[0]["reason"], "customer never got it");
    assert_eq!(links[1]["n"], 2);

    let (_, audit) = h
        .call(
            "GET",
            &format!("/api/v1/audit?action=delivery.resend&object_id={origin}"),
            Some(&operator),
            None,
        )
        .await;
    let entries = audit.as_array().unwrap();
    assert_eq!(entries.len(), 2);
    assert_eq!(entries[1]["token_id"], operator_id);
    assert_eq!(entries[1]["tenant"], "acme-invest");
    assert_eq!(entries[1]["reason"], "customer never got it");
    assert_eq!(entries[1]["detail"]["new_delivery_id"], new_id);

    // An event whose sensitive variables were masked at storage cannot be resent faithfully.
    let bank = h.publish(&bank_deposit("resend-2", "misaki@example.com")).await;
    let (admin, _) = h.token(Role::Admin, &[]).await;
    let (status, body) = h
        .call(
            "POST",
            &format!("/api/v1/deliveries/{bank}/resend"),
            Some(&admin),
            Some(&json!({ "reason": "x" })),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body["message"].as_str().unwrap().contains("balance"), "{body}");
    assert_eq!(h.sender.sent().len(), 4);
}

#[tokio::test]
async fn rejected_events_are_listed_and_replayed_after_the_template_is_added() {
    let h = harness().await;
    let rejected = h.publish(&invest_withdrawal("replay-1", "hanako@example.com")).await;
    h.handler.handle(&tayori_app::InboundMessage::first(b"<not json>".to_vec())).await.unwrap();
    let (operator, _) = h.token(Role::Operator, &[]).await;

    let (_, list) = h.call("GET", "/api/v1/rejected-events", Some(&operator), None).await;
    assert_eq!(list["deliveries"][0]["delivery_id"], rejected.to_string());
    assert!(list["deliveries"][0]["reason"].as_str().unwrap().contains("no template"));
    assert_eq!(list["deliveries"][0]["event"]["type"], "account.withdrawal_requested");
    // Not JSON: nothing in it can be told apart as personal, so only an admin sees it.
    assert_eq!(list["unkeyed"][0]["raw_body"], "[10 bytes, not JSON: shown to admins only]");
    assert!(list["unkeyed"][0]["reason"].as_str().unwrap().contains("not valid JSON"));

    // Before the fix: the replay is rejected again (and recorded as its own delivery).
    let (status, before) = h
        .call(
            "POST",
            &format!("/api/v1/deliveries/{rejected}/replay"),
            Some(&operator),
            Some(&json!({ "reason": "try" })),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(before["status"], "rejected");

    // The template is added; replaying many at once sends it.
    h.templates.is_blocked.store(false, Ordering::SeqCst);
    let sha = list["unkeyed"][0]["body_sha256"].as_str().unwrap();
    let (status, results) = h
        .call("POST", "/api/v1/rejected-events/replay", Some(&operator),
            Some(&json!({ "delivery_ids": [rejected.to_string(), "not-a-uuid"], "unkeyed": [sha], "reason": "template added" })))
        .await;
    assert_eq!(status, StatusCode::OK, "{results}");
    assert_eq!(results[0]["result"]["status"], "sent", "{results}");
    assert!(results[1]["error"].as_str().unwrap().contains("not a delivery id"));
    assert_eq!(results[2]["result"]["status"], "rejected", "a body without a key stays one");
    assert_eq!(h.sender.sent().len(), 1);
    assert_eq!(h.sender.sent()[0].to.address.as_str(), "hanako@example.com");

    let new_id = results[0]["result"]["delivery_id"].as_str().unwrap();
    let (_, detail) =
        h.call("GET", &format!("/api/v1/deliveries/{new_id}"), Some(&operator), None).await;
    assert_eq!(detail["source"], "tayori:replay");
    assert_eq!(detail["event_id"], format!("{rejected}:2"));

    // Only rejected deliveries are replayed.
    let (status, _) = h
        .call(
            "POST",
            &format!("/api/v1/deliveries/{new_id}/replay"),
            Some(&operator),
            Some(&json!({ "reason": "x" })),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    let (_, audit) = h.call("GET", "/api/v1/audit", Some(&operator), None).await;
    let actions: Vec<_> = audit
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(actions.iter().filter(|a| *a == "delivery.replay").count(), 2);
    assert_eq!(actions.iter().filter(|a| *a == "rejection.replay").count(), 1);
}

#[tokio::test]
async fn suppressions_stop_the_worker_and_are_audited() {
    let h = harness().await;
    let (operator, _) = h.token(Role::Operator, &["acme-invest"]).await;
    let (admin, _) = h.token(Role::Admin, &[]).await;
    let add = json!({ "tenant": "acme-invest", "address": "Blocked@Example.com", "reason": "asked to stop" });
    assert_eq!(
        h.call("POST", "/api/v1/suppressions", Some(&operator), Some(&add)).await.0,
        StatusCode::CREATED
    );
    assert_eq!(
        h.call("POST", "/api/v1/suppressions", Some(&operator), Some(&add)).await.0,
        StatusCode::OK
    );

    // The worker's suppression check reads the same table.
    let id = h.publish(&invest_deposit("supp-1", "blocked@example.com")).await;
    let (_, detail) = h.call("GET", &format!("/api/v1/deliveries/{id}"), Some(&admin), None).await;
    assert_eq!(detail["status"], "suppressed");
    assert!(detail["reason"].as_str().unwrap().contains("asked to stop"));
    assert!(h.sender.sent().is_empty());
    // Another tenant is not affected.
    let (_, bank) =
        h.call("GET", "/api/v1/suppressions?tenant=acme-bank", Some(&admin), None).await;
    assert!(bank.as_array().unwrap().is_empty());
    h.publish(&bank_deposit("supp-2", "blocked@example.com")).await;
    assert_eq!(h.sender.sent().len(), 1);

    let (_, listed) = h.call("GET", "/api/v1/suppressions", Some(&operator), None).await;
    assert_eq!(listed[0]["address"], "B***@e***.com", "masked for operators");
    let (_, listed) = h.call("GET", "/api/v1/suppressions", Some(&admin), None).await;
    assert_eq!(
        listed[0]["address"], "Blocked@example.com",
        "kept as entered, matched without case"
    );

    let remove = json!({ "reason": "resubscribed" });
    let uri = "/api/v1/suppressions/acme-invest/blocked@example.com";
    assert_eq!(
        h.call("DELETE", uri, Some(&operator), Some(&remove)).await.0,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        h.call("DELETE", uri, Some(&operator), Some(&remove)).await.0,
        StatusCode::NOT_FOUND
    );
    h.publish(&invest_deposit("supp-3", "blocked@example.com")).await;
    assert_eq!(h.sender.sent().len(), 2);

    let (_, audit) = h.call("GET", "/api/v1/audit?tenant=acme-invest", Some(&admin), None).await;
    let actions: Vec<_> = audit.as_array().unwrap().iter().map(|e| e["action"].clone()).collect();
    assert_eq!(actions, vec![json!("suppression.remove"), json!("suppression.add")]);
}

#[tokio::test]
async fn stats_count_per_tenant_and_outcome() {
    let h = harness().await;
    for i in 0..3 {
        h.publish(&invest_deposit(&format!("stat-{i}"), "a@example.com")).await;
    }
    h.publish(&invest_withdrawal("stat-r", "a@example.com")).await;
    h.publish(&bank_deposit("stat-b", "a@example.com")).await;
    let (viewer, _) = h.token(Role::Viewer, &[]).await;
    for window in ["hour", "day", "week"] {
        let (status, stats) =
            h.call("GET", &format!("/api/v1/stats?window={window}"), Some(&viewer), None).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(
            stats["counts"],
            json!([
                { "tenant": "acme-bank", "status": "sent", "count": 1 },
                { "tenant": "acme-invest", "status": "rejected", "count": 1 },
                { "tenant": "acme-invest", "status": "sent", "count": 3 },
            ])
        );
    }
    assert_eq!(
        h.call("GET", "/api/v1/stats?window=year", Some(&viewer), None).await.0,
        StatusCode::BAD_REQUEST
    );
}

#[tokio::test]
async fn templates_list_and_preview_with_a_sample_or_posted_variables() {
    let h = harness().await;
    let (viewer, _) = h.token(Role::Viewer, &["acme-bank"]).await;
    let (_, list) = h.call("GET", "/api/v1/templates", Some(&viewer), None).await;
    let deposit = list
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["event_type"] == "account.deposit_completed")
        .unwrap();
    assert!(!deposit["samples"].as_array().unwrap().is_empty());

    let (status, preview) = h
        .call(
            "GET",
            "/api/v1/templates/acme-bank/account.deposit_completed/preview?locale=en",
            Some(&viewer),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{preview}");
    assert_eq!(preview["locale"], "en");
    assert!(
        !preview["html"].as_str().unwrap().contains("1,204,733"),
        "the sensitive balance is masked"
    );

    let vars = json!({ "variables": { "amount": 777, "depositor": "<b>x</b>", "account_last4": "1234",
        "deposited_at": "2026-11-25T09:00:00+09:00", "balance": 5 }, "locale": "en" });
    let (status, posted) = h
        .call(
            "POST",
            "/api/v1/templates/acme-bank/account.deposit_completed/preview",
            Some(&viewer),
            Some(&vars),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{posted}");
    let html = posted["html"].as_str().unwrap();
    assert!(
        html.contains("&lt;b&gt;x") && !html.contains("<b>x</b>"),
        "variables are escaped: {html}"
    );
    assert!(html.contains("777"));
    let (status, bad) = h
        .call(
            "POST",
            "/api/v1/templates/acme-bank/account.deposit_completed/preview",
            Some(&viewer),
            Some(&json!({ "variables": {} })),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}");
}

#[tokio::test]
async fn health_and_readiness_need_no_token() {
    let h = harness().await;
    let (status, _) = h.call("GET", "/healthz", None, None).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _, body) = h.page("GET", "/readyz", None, None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    h.store.close().await;
    let (status, _, _) = h.page("GET", "/readyz", None, None).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
}

#[tokio::test]
async fn reputation_shows_bounce_and_complaint_rates_per_tenant() {
    use tayori_app::ports::{FeedbackPolicy, FeedbackRecord, FeedbackStore};
    let h = harness().await;
    let mut ids = Vec::new();
    for i in 0..4 {
        ids.push(
            h.publish(&invest_deposit(&format!("rep-{i}"), &format!("r{i}@example.com"))).await,
        );
    }
    h.publish(&bank_deposit("rep-bank", "b@example.com")).await;
    // SES says: the first bounced for good, the second drew a complaint (after its delivery).
    let feedback = tayori_postgres::PostgresFeedbackStore::new(h.store.pool().clone());
    let report = |kind: &str, section: serde_json::Value, delivery: &tayori_domain::DeliveryId| {
        let mut event = json!({
            "eventType": kind,
            "mail": { "tags": {
                "tayori-tenant": ["acme-invest"],
                "tayori-delivery-id": [delivery.to_string()],
            } },
        });
        event[kind.to_ascii_lowercase()] = section;
        tayori_domain::parse_feedback(event.to_string().as_bytes()).unwrap()
    };
    let bounce = report(
        "Bounce",
        json!({ "bounceType": "Permanent", "bounceSubType": "General", "bouncedRecipients": [] }),
        &ids[0],
    );
    let delivery = report("Delivery", json!({ "recipients": [] }), &ids[1]);
    let complaint = report("Complaint", json!({ "complainedRecipients": [] }), &ids[1]);
    for event in [&bounce, &delivery, &complaint] {
        let now = chrono::Utc::now();
        let policy = FeedbackPolicy::default();
        feedback.record_feedback(FeedbackRecord::Event(event), &policy, now).await.unwrap();
    }

    let (viewer, _) = h.token(Role::Viewer, &[]).await;
    let (status, view) = h.call("GET", "/api/v1/reputation?window=day", Some(&viewer), None).await;
    assert_eq!(status, StatusCode::OK, "{view}");
    assert_eq!(view["bounce_rate_threshold"], json!(0.04));
    assert_eq!(view["min_sent"], json!(200));
    assert_eq!(
        view["tenants"],
        json!([
            { "tenant": "acme-bank", "sent": 1, "bounced": 0, "complained": 0,
              "bounce_rate": 0.0, "complaint_rate": 0.0, "over_threshold": false },
            { "tenant": "acme-invest", "sent": 4, "bounced": 1, "complained": 1,
              "bounce_rate": 0.25, "complaint_rate": 0.25, "over_threshold": false },
        ])
    );
    let (scoped, _) = h.token(Role::Viewer, &["acme-bank"]).await;
    let (_, view) = h.call("GET", "/api/v1/reputation", Some(&scoped), None).await;
    assert_eq!(view["tenants"].as_array().unwrap().len(), 1, "only the token's tenants");

    // Over the thresholds (judged from 4 sent here), the next bounce pauses the tenant; an
    // operator resumes it, audited; a second resume changes nothing.
    let guard = tayori_app::ports::ReputationGuard {
        thresholds: tayori_app::ports::ReputationThresholds { min_sent: 4, ..Default::default() },
        window: std::time::Duration::from_secs(86_400),
    };
    let policy = FeedbackPolicy { reputation: Some(guard), ..FeedbackPolicy::default() };
    let again = report(
        "Bounce",
        json!({ "bounceType": "Permanent", "bounceSubType": "General", "bouncedRecipients": [],
                "feedbackId": "again" }),
        &ids[2],
    );
    feedback
        .record_feedback(FeedbackRecord::Event(&again), &policy, chrono::Utc::now())
        .await
        .unwrap();
    let (_, view) = h.call("GET", "/api/v1/reputation", Some(&viewer), None).await;
    assert_eq!(view["paused"][0]["tenant"], "acme-invest", "{view}");
    assert!(view["paused"][0]["reason"].as_str().unwrap().contains("bounces"));
    let (operator, _) = h.token(Role::Operator, &["acme-invest"]).await;
    let resume = json!({ "reason": "list cleaned" });
    let uri = "/api/v1/tenants/acme-invest/resume";
    assert_eq!(h.call("POST", uri, Some(&viewer), Some(&resume)).await.0, StatusCode::FORBIDDEN);
    let (status, body) = h.call("POST", uri, Some(&operator), Some(&resume)).await;
    assert_eq!((status, body), (StatusCode::OK, json!({ "resumed": true })));
    let (status, body) = h.call("POST", uri, Some(&operator), Some(&resume)).await;
    assert_eq!((status, body), (StatusCode::OK, json!({ "resumed": false })));
    let (_, view) = h.call("GET", "/api/v1/reputation", Some(&viewer), None).await;
    assert_eq!(view["paused"], json!([]));
    let (_, audit) = h.call("GET", "/api/v1/audit?action=tenant.resume", Some(&viewer), None).await;
    assert_eq!(audit.as_array().unwrap().len(), 1, "{audit}");
    assert_eq!(
        h.call("GET", "/api/v1/reputation?window=year", Some(&viewer), None).await.0,
        StatusCode::BAD_REQUEST
    );
}

#[tokio::test]
async fn an_operator_pause_holds_the_tenants_events_until_it_is_resumed() {
    use tayori_app::InboundMessage;
    let h = harness().await;
    let earlier = h.publish(&invest_deposit("pause-0", "taro@example.com")).await;
    let (viewer, _) = h.token(Role::Viewer, &[]).await;
    let (operator, operator_id) = h.token(Role::Operator, &["acme-invest"]).await;
    let (bank_operator, _) = h.token(Role::Operator, &["acme-bank"]).await;
    let (admin, _) = h.token(Role::Admin, &[]).await;
    let why = json!({ "reason": "wrong amounts in the deposit template" });
    let uri = "/api/v1/tenants/acme-invest/pause";

    // Who may: a viewer may not; another tenant's operator sees no such tenant; a reason is
    // required; a misspelt tenant is not "paused".
    assert_eq!(h.call("POST", uri, Some(&viewer), Some(&why)).await.0, StatusCode::FORBIDDEN);
    assert_eq!(
        h.call("POST", uri, Some(&bank_operator), Some(&why)).await.0,
        StatusCode::NOT_FOUND
    );
    let blank = json!({ "reason": "  " });
    assert_eq!(h.call("POST", uri, Some(&operator), Some(&blank)).await.0, StatusCode::BAD_REQUEST);
    let (status, body) =
        h.call("POST", "/api/v1/tenants/acme-invset/pause", Some(&admin), Some(&why)).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert!(body["message"].as_str().unwrap().contains("acme-invset"), "{body}");
    let (_, view) = h.call("GET", "/api/v1/reputation", Some(&viewer), None).await;
    assert_eq!(view["paused"], json!([]), "nothing paused by the refused calls");

    // The pause: once, listed with who and why.
    let (status, body) = h.call("POST", uri, Some(&operator), Some(&why)).await;
    assert_eq!((status, body), (StatusCode::OK, json!({ "paused": true })));
    let (status, body) = h.call("POST", uri, Some(&operator), Some(&why)).await;
    assert_eq!((status, body), (StatusCode::OK, json!({ "paused": false })));
    let (_, view) = h.call("GET", "/api/v1/reputation", Some(&viewer), None).await;
    let paused = &view["paused"];
    assert_eq!(paused.as_array().unwrap().len(), 1, "{view}");
    assert_eq!(paused[0]["tenant"], "acme-invest");
    assert_eq!(paused[0]["reason"], "wrong amounts in the deposit template");
    assert_eq!(paused[0]["paused_by"], json!(operator_id));
    assert!(
        paused[0]["paused_at"].as_str().unwrap().parse::<chrono::DateTime<chrono::Utc>>().is_ok()
    );

    // The event path: the tenant's event is held unclaimed, nothing is sent; another tenant's
    // event goes out; a resend is held too.
    let sent_before = h.sender.sent().len();
    let message = InboundMessage::first(
        invest_deposit("pause-1", "hanako@example.com").to_string().into_bytes(),
    );
    let held = h.handler.handle(&message).await.expect("held");
    let tayori_app::Handled::Held { reason, .. } = held else { panic!("{held:?}") };
    assert_eq!(reason, "wrong amounts in the deposit template");
    let (_, page) =
        h.call("GET", "/api/v1/deliveries?tenant=acme-invest", Some(&viewer), None).await;
    assert_eq!(page["deliveries"].as_array().unwrap().len(), 1, "nothing claimed: {page}");
    h.publish(&bank_deposit("pause-2", "jiro@example.com")).await;
    assert_eq!(h.sender.sent().len(), sent_before + 1, "acme-bank still sends");
    let resend = json!({ "reason": "customer asked" });
    let (status, result) = h
        .call(
            "POST",
            &format!("/api/v1/deliveries/{earlier}/resend"),
            Some(&operator),
            Some(&resend),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{result}");
    assert_eq!(result["status"], "processing", "{result}");
    assert!(result["reason"].as_str().unwrap().contains("held until it is resumed"), "{result}");
    assert_eq!(h.sender.sent().len(), sent_before + 1, "the resend was not sent");
    let (_, view) = h.call("GET", "/api/v1/reputation", Some(&viewer), None).await;
    assert_eq!(view["paused"][0]["held_events"], 2, "the event and the resend: {view}");
    assert!(view["paused"][0]["oldest_held_at"].is_string(), "{view}");

    // Resumed: a release round sends both, once.
    let resume = json!({ "reason": "template fixed" });
    let (status, body) =
        h.call("POST", "/api/v1/tenants/acme-invest/resume", Some(&operator), Some(&resume)).await;
    assert_eq!((status, body), (StatusCode::OK, json!({ "resumed": true })));
    let release = tayori_app::ReleaseHeldEvents {
        held: std::sync::Arc::new(tayori_postgres::PostgresHeldEvents::new(h.store.pool().clone())),
        handler: h.handler.clone(),
        clock: std::sync::Arc::new(common::SystemClock),
        settings: tayori_app::ReleaseSettings::default(),
    };
    let released = release.release_batch().await.unwrap();
    assert_eq!(released, tayori_app::Released { decided: 2, held_again: 0, later: 0 });
    assert_eq!(h.sender.sent().len(), sent_before + 3);
    assert_eq!(release.release_batch().await.unwrap(), tayori_app::Released::default());
    let handled = h.handler.handle(&message).await.expect("decided");
    assert!(matches!(handled, tayori_app::Handled::Duplicate { .. }), "{handled:?}");
    let (_, view) = h.call("GET", "/api/v1/reputation", Some(&viewer), None).await;
    assert_eq!(view["paused"], json!([]));

    // Audited once each, with the operator and the reason.
    let (_, audit) = h.call("GET", "/api/v1/audit?action=tenant.pause", Some(&viewer), None).await;
    let audit = audit.as_array().unwrap();
    assert_eq!(audit.len(), 1, "{audit:?}");
    assert_eq!(audit[0]["token_id"], json!(operator_id));
    assert_eq!(audit[0]["tenant"], "acme-invest");
    assert_eq!(audit[0]["reason"], "wrong amounts in the deposit template");
    let (_, audit) = h.call("GET", "/api/v1/audit?action=tenant.resume", Some(&viewer), None).await;
    assert_eq!(audit.as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn detail_shows_what_ses_said_in_order_with_recipients_masked_by_role() {
    use tayori_app::ports::{FeedbackPolicy, FeedbackRecord, FeedbackStore};
    let h = harness().await;
    let id = h.publish(&invest_deposit("said-1", "kenji.sato@example.com")).await;
    let feedback = tayori_postgres::PostgresFeedbackStore::new(h.store.pool().clone());
    let tags = json!({ "tayori-tenant": ["acme-invest"], "tayori-delivery-id": [id.to_string()] });
    let delivered = json!({
        "eventType": "Delivery",
        "mail": { "tags": tags },
        "delivery": { "timestamp": "2026-11-28T09:00:02Z", "recipients": ["kenji.sato@example.com"] },
    });
    // Arrives first, happened later: the timeline is in SES's order.
    let bounced = json!({
        "eventType": "Bounce",
        "mail": { "tags": tags },
        "bounce": {
            "bounceType": "Transient", "bounceSubType": "MailboxFull",
            "timestamp": "2026-11-28T09:05:00Z",
            "bouncedRecipients": [{ "emailAddress": "kenji.sato@example.com" }],
        },
    });
    for event in [&bounced, &delivered] {
        let event = tayori_domain::parse_feedback(event.to_string().as_bytes()).unwrap();
        let (policy, now) = (FeedbackPolicy::default(), chrono::Utc::now());
        feedback.record_feedback(FeedbackRecord::Event(&event), &policy, now).await.unwrap();
    }

    let (admin, _) = h.token(Role::Admin, &[]).await;
    let (status, full) =
        h.call("GET", &format!("/api/v1/deliveries/{id}"), Some(&admin), None).await;
    assert_eq!(status, StatusCode::OK, "{full}");
    assert_eq!(full["feedback_status"], "bounced");
    let kinds: Vec<&str> =
        full["feedback"].as_array().unwrap().iter().map(|f| f["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["delivery", "bounce"], "{full}");
    assert_eq!(full["feedback"][1]["detail"], "Transient/MailboxFull");
    assert_eq!(full["feedback"][1]["recipients"], json!(["kenji.sato@example.com"]));
    assert!(
        full["feedback"][0]["occurred_at"].as_str().unwrap().starts_with("2026-11-28T09:00:02")
    );

    let (viewer, _) = h.token(Role::Viewer, &[]).await;
    let (_, masked) = h.call("GET", &format!("/api/v1/deliveries/{id}"), Some(&viewer), None).await;
    assert_eq!(masked["feedback"][1]["recipients"], json!(["k***@e***.com"]));
    assert!(!masked.to_string().contains("kenji.sato"), "{masked}");

    // A delivery SES said nothing about yet.
    let quiet = h.publish(&invest_deposit("said-2", "quiet@example.com")).await;
    let (_, view) = h.call("GET", &format!("/api/v1/deliveries/{quiet}"), Some(&admin), None).await;
    assert_eq!(view["feedback_status"], serde_json::Value::Null);
    assert_eq!(view["feedback"], json!([]));
}

#[tokio::test]
async fn feedback_that_matched_no_delivery_is_listed_newest_first_a_page_at_a_time() {
    use tayori_app::ports::{FeedbackPolicy, FeedbackRecord, FeedbackStore};
    let h = harness().await;
    for n in 1..=3 {
        common::record_unmatched_feedback(&h, &format!("ses-unknown-{n}")).await;
    }
    // A body that is not SES feedback at all: kept as invalid.
    let body = b"{\"Type\": \"Notification\", \"Message\": \"not json\"}";
    let invalid = tayori_domain::parse_feedback(body).unwrap_err();
    let feedback = tayori_postgres::PostgresFeedbackStore::new(h.store.pool().clone());
    feedback
        .record_feedback(
            FeedbackRecord::Invalid { invalid: &invalid, body },
            &FeedbackPolicy::default(),
            chrono::Utc::now(),
        )
        .await
        .unwrap();
    // Matched feedback is not listed.
    let id = h.publish(&invest_deposit("kept-1", "taro@example.com")).await;
    let tags = json!({ "tayori-tenant": ["acme-invest"], "tayori-delivery-id": [id.to_string()] });
    let delivered = json!({
        "eventType": "Delivery",
        "mail": { "tags": tags },
        "delivery": { "timestamp": "2026-11-28T09:00:02Z", "recipients": ["taro@example.com"] },
    });
    let event = tayori_domain::parse_feedback(delivered.to_string().as_bytes()).unwrap();
    feedback
        .record_feedback(
            FeedbackRecord::Event(&event),
            &FeedbackPolicy::default(),
            chrono::Utc::now(),
        )
        .await
        .unwrap();

    let (viewer, _) = h.token(Role::Viewer, &[]).await;
    let (status, first) =
        h.call("GET", "/api/v1/feedback/unmatched?limit=3", Some(&viewer), None).await;
    assert_eq!(status, StatusCode::OK, "{first}");
    let rows = first["feedback"].as_array().unwrap();
    assert_eq!(rows.len(), 3, "{first}");
    assert_eq!(rows[0]["result"], "invalid", "the newest first: {first}");
    assert!(!rows[0]["reason"].as_str().unwrap().is_empty(), "kept with its reason: {first}");
    assert_eq!(rows[1]["result"], "unmatched");
    assert_eq!(rows[1]["kind"], "bounce");
    assert_eq!(rows[1]["ses_message_id"], "ses-unknown-3");
    let next = first["next"].as_str().expect("a second page");
    let (status, second) = h
        .call(
            "GET",
            &format!("/api/v1/feedback/unmatched?limit=3&after={next}"),
            Some(&viewer),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{second}");
    let rows = second["feedback"].as_array().unwrap();
    assert_eq!(rows.len(), 1, "{second}");
    assert_eq!(rows[0]["ses_message_id"], "ses-unknown-1");
    assert!(second["next"].is_null(), "{second}");

    // No tenant is named, so a token scoped to tenants sees none of it.
    let (scoped, _) = h.token(Role::Admin, &["acme-invest"]).await;
    let (status, none) = h.call("GET", "/api/v1/feedback/unmatched", Some(&scoped), None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(none["feedback"], json!([]), "{none}");

    for bad in ["after=yesterday", "after=123_", "limit=0", "limit=501"] {
        let (status, body) =
            h.call("GET", &format!("/api/v1/feedback/unmatched?{bad}"), Some(&viewer), None).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}: {body}");
    }
}

#[tokio::test]
async fn a_paused_tenants_held_events_are_discarded_as_rejected_once_and_audited() {
    use tayori_app::{Handled, InboundMessage};
    let h = harness().await;
    let (viewer, _) = h.token(Role::Viewer, &[]).await;
    let (operator, operator_id) = h.token(Role::Operator, &[]).await;
    let why = json!({ "reason": "the producer sent wrong amounts" });
    let uri = "/api/v1/tenants/acme-invest/held/discard";
    let deposit = |id: &str| {
        InboundMessage::first(invest_deposit(id, "hanako@example.com").to_string().into_bytes())
    };

    // Not paused: refused, since its held events would be on their way out.
    let (status, body) = h.call("POST", uri, Some(&operator), Some(&why)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(body["message"].as_str().unwrap().contains("not paused"), "{body}");

    // Paused, two events held; a viewer may not discard, and a reason is required.
    let pause = json!({ "reason": "wrong amounts" });
    let paused = h.call("POST", "/api/v1/tenants/acme-invest/pause", Some(&operator), Some(&pause));
    assert_eq!(paused.await.0, StatusCode::OK);
    for id in ["discard-1", "discard-2"] {
        let held = h.handler.handle(&deposit(id)).await;
        assert!(matches!(held, Ok(Handled::Held { .. })), "{held:?}");
    }
    assert_eq!(h.call("POST", uri, Some(&viewer), Some(&why)).await.0, StatusCode::FORBIDDEN);
    let blank = json!({ "reason": " " });
    assert_eq!(h.call("POST", uri, Some(&operator), Some(&blank)).await.0, StatusCode::BAD_REQUEST);

    // What is held, for any role: by event type and the oldest first, without recipients.
    let held = "/api/v1/tenants/acme-invest/held";
    let (status, view) = h.call("GET", &format!("{held}?limit=1"), Some(&viewer), None).await;
    assert_eq!(status, StatusCode::OK, "{view}");
    assert_eq!(view["total"], 2, "{view}");
    assert_eq!(view["by_event_type"][0]["event_type"], "account.deposit_completed");
    assert_eq!(view["by_event_type"][0]["events"], 2);
    assert_eq!(view["oldest"].as_array().unwrap().len(), 1, "{view}");
    assert_eq!(view["oldest"][0]["event_id"], "discard-1");
    assert_eq!(view["oldest"][0]["reason"], "wrong amounts");
    assert!(!view.to_string().contains("hanako@example.com"), "no recipient: {view}");
    let (status, _) = h.call("GET", &format!("{held}?limit=0"), Some(&viewer), None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    let (status, body) = h.call("POST", uri, Some(&operator), Some(&why)).await;
    assert_eq!(
        (status, body),
        (StatusCode::OK, json!({"discarded": 2, "left": 0, "remaining": 0}))
    );
    let (_, view) = h.call("GET", held, Some(&viewer), None).await;
    assert_eq!(view, json!({"total": 0, "by_event_type": [], "oldest": []}));
    let (_, view) = h.call("GET", "/api/v1/reputation", Some(&viewer), None).await;
    assert_eq!(view["paused"][0]["held_events"], 0, "{view}");

    // Each is listed as rejected with the reason; nothing was sent; a later copy is a
    // duplicate, and after the resume nothing is released.
    let (_, page) =
        h.call("GET", "/api/v1/deliveries?tenant=acme-invest", Some(&viewer), None).await;
    let deliveries = page["deliveries"].as_array().unwrap();
    assert_eq!(deliveries.len(), 2, "{page}");
    for delivery in deliveries {
        assert_eq!(delivery["status"], "rejected", "{delivery}");
        let reason = delivery["reason"].as_str().unwrap();
        assert!(reason.contains("discarded while the tenant was paused"), "{reason}");
        assert!(reason.contains("the producer sent wrong amounts"), "{reason}");
    }
    let resume = json!({ "reason": "producer fixed" });
    let resumed =
        h.call("POST", "/api/v1/tenants/acme-invest/resume", Some(&operator), Some(&resume));
    assert_eq!(resumed.await.0, StatusCode::OK);
    let again = h.handler.handle(&deposit("discard-1")).await;
    assert!(matches!(again, Ok(Handled::Duplicate { .. })), "{again:?}");
    assert!(h.sender.sent().is_empty(), "nothing sent");

    // Audited once, with who, why and the counts.
    let (_, audit) =
        h.call("GET", "/api/v1/audit?action=tenant.discard_held", Some(&viewer), None).await;
    let audit = audit.as_array().unwrap();
    assert_eq!(audit.len(), 1, "{audit:?}");
    assert_eq!(audit[0]["token_id"], json!(operator_id));
    assert_eq!(audit[0]["reason"], "the producer sent wrong amounts");
    assert_eq!(audit[0]["detail"]["discarded"], 2, "{audit:?}");
}

/// A window around "now" for bulk resends: RFC 3339 strings.
fn window_around_now() -> (String, String) {
    let now = chrono::Utc::now();
    let at =
        |t: chrono::DateTime<chrono::Utc>| t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
    (at(now - chrono::Duration::minutes(5)), at(now + chrono::Duration::minutes(5)))
}

fn rejected_by_ses() -> tayori_app::ports::SendError {
    tayori_app::ports::SendError::Rejected { reason: "MailFromDomainNotVerified".into() }
}

#[tokio::test]
async fn failed_deliveries_are_resent_in_bulk_once_each_a_page_at_a_time() {
    let h = harness().await;
    let (viewer, _) = h.token(Role::Viewer, &[]).await;
    let (operator, _) = h.token(Role::Operator, &["acme-invest", "acme-bank"]).await;
    let (from, until) = window_around_now();

    // Three deposits fail (the sending domain lost its verification); one is sent; one is
    // rejected (its template is missing); a fourth failure is resent by hand before the bulk.
    h.sender.fail_next(vec![rejected_by_ses(), rejected_by_ses(), rejected_by_ses()]);
    let mut failed = Vec::new();
    for id in ["bulk-1", "bulk-2", "bulk-3"] {
        failed.push(h.publish(&invest_deposit(id, &format!("{id}@example.com"))).await);
    }
    h.publish(&invest_deposit("bulk-sent", "sent@example.com")).await;
    h.publish(&invest_withdrawal("bulk-rejected", "rejected@example.com")).await;
    h.sender.fail_next(vec![rejected_by_ses()]);
    let by_hand = h.publish(&invest_deposit("bulk-by-hand", "hand@example.com")).await;
    let resend = format!("/api/v1/deliveries/{by_hand}/resend");
    let why = json!({ "reason": "one customer called" });
    assert_eq!(h.call("POST", &resend, Some(&operator), Some(&why)).await.0, StatusCode::CREATED);
    let sends_before = h.sender.sent().len();
    assert_eq!(sends_before, 2, "the sent deposit and the resend by hand");

    // The search's `not_resent` shows what is left: the three.
    let search = "/api/v1/deliveries?tenant=acme-invest&status=failed";
    let (_, all_failed) = h.call("GET", search, Some(&viewer), None).await;
    assert_eq!(all_failed["deliveries"].as_array().unwrap().len(), 4, "{all_failed}");
    let (_, left) = h.call("GET", &format!("{search}&not_resent=true"), Some(&viewer), None).await;
    let left: BTreeSet<String> = left["deliveries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["delivery_id"].as_str().unwrap().to_owned())
        .collect();
    let expected: BTreeSet<String> = failed.iter().map(ToString::to_string).collect();
    assert_eq!(left, expected);

    let uri = "/api/v1/deliveries/resend-failed";
    let request = |extra: serde_json::Value| {
        let mut body = json!({
            "tenant": "acme-invest", "from": from, "until": until,
            "reason": "the sending domain is verified again",
        });
        body.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        body
    };

    // Refusals: a viewer, no reason, an empty window, a limit out of range, no tenant.
    let refused = [
        (Some(&viewer), request(json!({})), StatusCode::FORBIDDEN),
        (Some(&operator), request(json!({ "reason": " " })), StatusCode::BAD_REQUEST),
        (Some(&operator), request(json!({ "until": from })), StatusCode::BAD_REQUEST),
        (Some(&operator), request(json!({ "limit": 501 })), StatusCode::BAD_REQUEST),
        (Some(&operator), request(json!({ "from": "yesterday" })), StatusCode::BAD_REQUEST),
        (Some(&operator), request(json!({ "tenant": "acme-other" })), StatusCode::NOT_FOUND),
    ];
    for (token, body, expected) in refused {
        let (status, answer) = h.call("POST", uri, token.map(String::as_str), Some(&body)).await;
        assert_eq!(status, expected, "{body}: {answer}");
    }

    // A dry run lists the three, newest first, and sends nothing.
    let (status, dry) =
        h.call("POST", uri, Some(&operator), Some(&request(json!({ "dry_run": true })))).await;
    assert_eq!(status, StatusCode::OK, "{dry}");
    let items = dry["items"].as_array().unwrap();
    let origins: Vec<&str> =
        items.iter().map(|i| i["origin"]["delivery_id"].as_str().unwrap()).collect();
    let newest_first: Vec<String> = failed.iter().rev().map(ToString::to_string).collect();
    assert_eq!(origins, newest_first, "{dry}");
    assert!(items.iter().all(|i| i["result"].is_null() && i["error"].is_null()), "{dry}");
    assert_eq!(items[0]["origin"]["recipient"], "b***@e***.com", "masked for an operator");
    assert_eq!(h.sender.sent().len(), sends_before);

    // Two a page: the two newest, then the last one; then nothing is left.
    let (status, first) =
        h.call("POST", uri, Some(&operator), Some(&request(json!({ "limit": 2 })))).await;
    assert_eq!(status, StatusCode::OK, "{first}");
    let items = first["items"].as_array().unwrap();
    assert_eq!(items.len(), 2, "{first}");
    assert!(items.iter().all(|i| i["result"]["status"] == "sent"), "{first}");
    let next = first["next"].as_str().expect("a next page").to_owned();
    let (_, second) = h
        .call("POST", uri, Some(&operator), Some(&request(json!({ "limit": 2, "after": next }))))
        .await;
    let items = second["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{second}");
    assert_eq!(items[0]["origin"]["delivery_id"], failed[0].to_string());
    assert_eq!(items[0]["result"]["status"], "sent");
    assert!(second["next"].is_null(), "{second}");
    let (_, again) = h.call("POST", uri, Some(&operator), Some(&request(json!({})))).await;
    assert_eq!(again, json!({ "items": [], "next": null }), "a repeated call resends nothing");

    // One email each, to the failed deliveries' recipients, each linked and audited.
    let sent = h.sender.sent();
    assert_eq!(sent.len(), sends_before + 3);
    let recipients: BTreeSet<&str> =
        sent[sends_before..].iter().map(|e| e.to.address.as_str()).collect();
    assert_eq!(
        recipients,
        BTreeSet::from(["bulk-1@example.com", "bulk-2@example.com", "bulk-3@example.com"])
    );
    for origin in &failed {
        let (_, detail) =
            h.call("GET", &format!("/api/v1/deliveries/{origin}"), Some(&operator), None).await;
        let links = detail["links"].as_array().unwrap();
        assert_eq!(links.len(), 1, "{detail}");
        assert_eq!(links[0]["kind"], "resend");
        assert_eq!(links[0]["reason"], "the sending domain is verified again");
        let audit = format!("/api/v1/audit?action=delivery.resend&object_id={origin}");
        let (_, entries) = h.call("GET", &audit, Some(&operator), None).await;
        assert_eq!(entries.as_array().unwrap().len(), 1, "{entries}");
    }
    let (_, left) = h.call("GET", &format!("{search}&not_resent=true"), Some(&viewer), None).await;
    assert_eq!(left["deliveries"], json!([]), "{left}");

    // A failed delivery whose sensitive variables were masked at storage is reported with why,
    // in a dry run too, and nothing is sent.
    h.sender.fail_next(vec![rejected_by_ses()]);
    h.publish(&bank_deposit("bulk-bank", "misaki@example.com")).await;
    for dry_run in [true, false] {
        let body = request(json!({ "tenant": "acme-bank", "dry_run": dry_run }));
        let (status, answer) = h.call("POST", uri, Some(&operator), Some(&body)).await;
        assert_eq!(status, StatusCode::OK, "{answer}");
        let error = answer["items"][0]["error"].as_str().unwrap_or_default();
        assert!(error.contains("cannot be resent") && error.contains("balance"), "{answer}");
    }
    assert_eq!(h.sender.sent().len(), sends_before + 3);

    // A resend SES throttled stays undecided; the next call takes its failed delivery again
    // and finishes that same resend (one more link? no: the same key, the same delivery).
    h.sender.fail_next(vec![rejected_by_ses()]);
    let late = h.publish(&invest_deposit("bulk-late", "late@example.com")).await;
    h.sender.fail_next(vec![tayori_app::ports::SendError::Throttled {
        reason: "Maximum sending rate exceeded".into(),
        retry_after: None,
    }]);
    let (_, throttled) = h.call("POST", uri, Some(&operator), Some(&request(json!({})))).await;
    assert_eq!(throttled["items"][0]["origin"]["delivery_id"], late.to_string(), "{throttled}");
    assert_eq!(throttled["items"][0]["result"]["status"], "processing", "{throttled}");
    let first_try = throttled["items"][0]["result"]["delivery_id"].clone();
    // The tenant waits out SES's throttling (1 s without a hint) before its next send.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let (_, retried) = h.call("POST", uri, Some(&operator), Some(&request(json!({})))).await;
    assert_eq!(retried["items"][0]["result"]["status"], "sent", "{retried}");
    assert_eq!(retried["items"][0]["result"]["delivery_id"], first_try, "the same resend");
    let (_, detail) =
        h.call("GET", &format!("/api/v1/deliveries/{late}"), Some(&operator), None).await;
    assert_eq!(detail["links"].as_array().unwrap().len(), 1, "{detail}");
    let (_, nothing) = h.call("POST", uri, Some(&operator), Some(&request(json!({})))).await;
    assert_eq!(nothing["items"], json!([]), "{nothing}");
    let sent_late =
        h.sender.sent().iter().filter(|e| e.to.address.as_str() == "late@example.com").count();
    assert_eq!(sent_late, 1);
}

#[tokio::test]
async fn two_bulk_resends_racing_over_one_window_resend_each_failure_once() {
    use tayori_app::admin::FailedResends;
    let h = harness().await;
    let failures = 12;
    h.sender.fail_next((0..failures).map(|_| rejected_by_ses()).collect());
    for i in 0..failures {
        h.publish(&invest_deposit(&format!("race-{i}"), &format!("race-{i}@example.com"))).await;
    }
    let (operator, _) = h.token(Role::Operator, &[]).await;
    let who = h.service.authenticate(&operator).await.unwrap();
    let tenant = common::tenant("acme-invest");
    let now = chrono::Utc::now();
    let request = || FailedResends {
        from: now - chrono::Duration::minutes(5),
        until: now + chrono::Duration::minutes(5),
        event_type: None,
        after: None,
        limit: 100,
        dry_run: false,
    };
    let (a, b) = tokio::join!(
        h.service.resend_failed(&who, &tenant, request(), "race a"),
        h.service.resend_failed(&who, &tenant, request(), "race b"),
    );
    let (a, b) = (a.unwrap(), b.unwrap());
    // Both calls may take the same failure; each handles its first resend's one key, so the
    // loser finds it decided (a duplicate) or in flight (left `processing`), never sends.
    let status = |page: &tayori_app::admin::FailedResendPage, wanted: &str| {
        page.items
            .iter()
            .filter(|i| match &i.result {
                Some(Ok(done)) => done.status.as_str() == wanted,
                _ => false,
            })
            .count()
    };
    let both_took = a.items.len() + b.items.len() - failures;
    println!(
        "race: a took {}, b took {} ({both_took} by both); sent {} + {}, processing {} + {}",
        a.items.len(),
        b.items.len(),
        status(&a, "sent"),
        status(&b, "sent"),
        status(&a, "processing"),
        status(&b, "processing"),
    );
    assert!(a.items.iter().chain(&b.items).all(|i| matches!(i.result, Some(Ok(_)))));
    assert_eq!(h.sender.sent().len(), failures, "one email per failure, however they raced");
    let links: i64 = sqlx::query_scalar("select count(*) from delivery_links")
        .fetch_one(h.store.pool())
        .await
        .unwrap();
    assert_eq!(links, failures as i64, "one first resend each");
    // A resend the race left `processing` (its key in flight elsewhere) finishes on the next
    // call; one that was sent is not taken again.
    let again = h.service.resend_failed(&who, &tenant, request(), "again").await.unwrap();
    assert!(again.items.iter().all(|i| matches!(i.result, Some(Ok(_)))), "{again:?}");
    assert_eq!(h.sender.sent().len(), failures);
    let last = h.service.resend_failed(&who, &tenant, request(), "last").await.unwrap();
    assert!(last.items.is_empty(), "{last:?}");
}

#[tokio::test]
async fn a_discard_can_be_limited_to_the_held_events_of_one_event_type() {
    use tayori_app::{Handled, InboundMessage};
    let h = harness().await;
    let (operator, _) = h.token(Role::Operator, &[]).await;
    let pause = json!({ "reason": "deposit amounts wrong" });
    let paused = h.call("POST", "/api/v1/tenants/acme-invest/pause", Some(&operator), Some(&pause));
    assert_eq!(paused.await.0, StatusCode::OK);

    // Two deposits (wrong amounts) and a security alert (fine) held.
    let dir = common::repo_templates().join("acme-invest/security.alert/samples");
    let sample = std::fs::read_dir(&dir).unwrap().flatten().map(|e| e.path()).min().unwrap();
    let data: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(sample).unwrap()).unwrap();
    let alert = json!({
        "specversion": "1.0", "id": "alert-1", "source": "acme-invest/security",
        "type": "security.alert", "tenant": "acme-invest", "data": data,
    });
    for event in [
        invest_deposit("type-1", "a@example.com"),
        invest_deposit("type-2", "b@example.com"),
        alert,
    ] {
        let held = h.handler.handle(&InboundMessage::first(event.to_string().into_bytes())).await;
        assert!(matches!(held, Ok(Handled::Held { .. })), "{held:?}");
    }

    let uri = "/api/v1/tenants/acme-invest/held/discard";
    let bad = json!({ "reason": "x", "event_type": "Not A Type" });
    assert_eq!(h.call("POST", uri, Some(&operator), Some(&bad)).await.0, StatusCode::BAD_REQUEST);
    let deposits = json!({ "reason": "wrong amounts", "event_type": "account.deposit_completed" });
    let (status, body) = h.call("POST", uri, Some(&operator), Some(&deposits)).await;
    assert_eq!(
        (status, body),
        (StatusCode::OK, json!({"discarded": 2, "left": 0, "remaining": 0})),
        "`remaining` counts the event type asked for"
    );
    let (_, held) = h.call("GET", "/api/v1/tenants/acme-invest/held", Some(&operator), None).await;
    assert_eq!(held["total"], 1, "{held}");
    assert_eq!(held["by_event_type"][0]["event_type"], "security.alert", "{held}");
    let (_, audit) =
        h.call("GET", "/api/v1/audit?action=tenant.discard_held", Some(&operator), None).await;
    assert_eq!(audit[0]["detail"]["event_type"], "account.deposit_completed", "{audit}");
    assert!(h.sender.sent().is_empty());
}

#[tokio::test]
async fn dead_letters_are_shown_by_event_never_by_body_and_redriven_with_a_reason() {
    let h = harness().await;
    let (viewer, _) = h.token(Role::Viewer, &[]).await;
    let (bank_viewer, _) = h.token(Role::Viewer, &["acme-bank"]).await;
    let (operator, operator_id) = h.token(Role::Operator, &[]).await;
    let now = chrono::Utc::now();
    let deposit = invest_deposit("dead-1", "taro@example.com").to_string();
    h.dead_letters.add("m-2", deposit.as_bytes(), now - chrono::Duration::minutes(5));
    h.dead_letters.add("m-1", b"{\"specversion\": \"1.0\"", now - chrono::Duration::hours(2));
    let bank = bank_deposit("dead-2", "misaki@example.com").to_string();
    h.dead_letters.add("m-3", bank.as_bytes(), now);

    // Oldest first; each by its event (key, type, delivery id), never by its body.
    let (status, view) = h.call("GET", "/api/v1/dead-letters", Some(&viewer), None).await;
    assert_eq!(status, StatusCode::OK, "{view}");
    assert_eq!(view["depth"], json!({ "queue": "events-dlq", "visible": 3, "in_flight": 0 }));
    let ids: Vec<&str> = view["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["message_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["m-1", "m-2", "m-3"]);
    let unreadable = &view["messages"][0];
    assert!(unreadable["tenant"].is_null() && unreadable["unreadable"].is_string(), "{view}");
    let readable = &view["messages"][1];
    assert_eq!(readable["tenant"], "acme-invest");
    assert_eq!(readable["event_id"], "dead-1");
    assert_eq!(readable["event_type"], "account.deposit_completed");
    assert_eq!(readable["receive_count"], 3);
    assert_eq!(readable["size"], deposit.len());
    let key = tayori_domain::IdempotencyKey::new(
        common::tenant("acme-invest"),
        tayori_domain::EventSource::parse("acme-invest/accounts").unwrap(),
        tayori_domain::EventId::parse("dead-1").unwrap(),
    );
    assert_eq!(readable["delivery_id"], key.delivery_id().to_string());
    let text = view.to_string();
    assert!(!text.contains("taro@example.com") && !text.contains("山田"), "no body: {text}");

    // A token of acme-bank sees acme-bank's message only, and no depth.
    let (_, view) = h.call("GET", "/api/v1/dead-letters", Some(&bank_viewer), None).await;
    assert_eq!(view["messages"].as_array().unwrap().len(), 1, "{view}");
    assert_eq!(view["messages"][0]["tenant"], "acme-bank");
    assert!(view["depth"].is_null());
    let (status, _) = h.call("GET", "/api/v1/dead-letters?limit=0", Some(&viewer), None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    // The queue unreachable: 503 (the cause goes to the log, as for the database).
    h.dead_letters.set_unreachable(true);
    let (status, body) = h.call("GET", "/api/v1/dead-letters", Some(&viewer), None).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    h.dead_letters.set_unreachable(false);

    // Redrive: a reason and a bounded count; two moved, audited with the count.
    let uri = "/api/v1/dead-letters/redrive";
    let no_reason = json!({ "max": 2, "reason": "" });
    assert_eq!(
        h.call("POST", uri, Some(&operator), Some(&no_reason)).await.0,
        StatusCode::BAD_REQUEST
    );
    let too_many = json!({ "max": 10_001, "reason": "x" });
    assert_eq!(
        h.call("POST", uri, Some(&operator), Some(&too_many)).await.0,
        StatusCode::BAD_REQUEST
    );
    let why = json!({ "max": 2, "reason": "database back after the outage" });
    let (status, body) = h.call("POST", uri, Some(&operator), Some(&why)).await;
    assert_eq!((status, body), (StatusCode::OK, json!({ "moved": 2, "stopped": null })));
    assert_eq!(h.dead_letters.redriven().len(), 2);
    let (_, view) = h.call("GET", "/api/v1/dead-letters", Some(&viewer), None).await;
    assert_eq!(view["depth"]["visible"], 1, "{view}");
    let (_, audit) = h.call("GET", "/api/v1/audit?action=dlq.redrive", Some(&viewer), None).await;
    assert_eq!(audit.as_array().unwrap().len(), 1, "{audit}");
    assert_eq!(audit[0]["token_id"], json!(operator_id));
    assert_eq!(audit[0]["reason"], "database back after the outage");
    assert_eq!(audit[0]["detail"]["moved"], 2, "{audit}");

    // SQS failing part way: what moved is said, with why it stopped, and audited.
    h.dead_letters.add("m-4", deposit.as_bytes(), now);
    h.dead_letters.stop_redrives_after(1);
    let why = json!({ "max": 10, "reason": "again" });
    let (status, body) = h.call("POST", uri, Some(&operator), Some(&why)).await;
    assert_eq!(
        (status, body),
        (StatusCode::OK, json!({ "moved": 1, "stopped": "sending: throttled" }))
    );
    let (_, audit) = h.call("GET", "/api/v1/audit?action=dlq.redrive", Some(&viewer), None).await;
    assert_eq!(audit[0]["detail"]["moved"], 1, "{audit}");
    assert!(audit[0]["detail"]["error"].as_str().unwrap().contains("throttled"), "{audit}");
    assert_eq!(audit[0]["object_id"], "events", "{audit}");

    // The SES feedback queue's: each notification by kind, SES message id and tags.
    let delivery = key.delivery_id().to_string();
    let bounce = json!({
        "eventType": "Bounce",
        "mail": { "messageId": "ses-dead-1", "tags": {
            "tayori-tenant": ["acme-invest"], "tayori-delivery-id": [delivery],
        } },
        "bounce": { "bounceType": "Permanent", "bounceSubType": "General",
                    "bouncedRecipients": [{ "emailAddress": "taro@example.com" }] },
    })
    .to_string();
    h.feedback_dead_letters.add("f-1", bounce.as_bytes(), now);
    let feedback = "/api/v1/dead-letters?queue=feedback";
    let (status, view) = h.call("GET", feedback, Some(&viewer), None).await;
    assert_eq!(status, StatusCode::OK, "{view}");
    assert_eq!(view["queue"], "feedback");
    let notification = &view["messages"][0];
    assert_eq!(notification["feedback_kind"], "bounce", "{view}");
    assert_eq!(notification["ses_message_id"], "ses-dead-1");
    assert_eq!(notification["tenant"], "acme-invest");
    assert_eq!(notification["delivery_id"], delivery);
    assert!(!view.to_string().contains("taro@example.com"), "no recipient: {view}");
    let (_, view) = h.call("GET", feedback, Some(&bank_viewer), None).await;
    assert_eq!(view["messages"], json!([]), "another tenant's: {view}");
    let (status, _) = h.call("GET", "/api/v1/dead-letters?queue=other", Some(&viewer), None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let why = json!({ "queue": "feedback", "max": 5, "reason": "store back" });
    let (status, body) = h.call("POST", uri, Some(&operator), Some(&why)).await;
    assert_eq!((status, body), (StatusCode::OK, json!({ "moved": 1, "stopped": null })));
    assert_eq!(h.feedback_dead_letters.redriven().len(), 1);
    let (_, audit) = h.call("GET", "/api/v1/audit?action=dlq.redrive", Some(&viewer), None).await;
    assert_eq!(audit[0]["object_id"], "feedback", "{audit}");
}

#[tokio::test]
async fn unknown_sends_wait_for_ses_then_a_report_reconciles_one_and_the_window_frees_the_other() {
    use tayori_app::ports::{FeedbackPolicy, FeedbackRecord, FeedbackStore};
    let h = harness().await;
    let (operator, _) = h.token(Role::Operator, &["acme-invest"]).await;
    let (from, until) = window_around_now();
    let ambiguous = || tayori_app::ports::SendError::Ambiguous {
        reason: "no answer within the call timeout".into(),
    };
    h.sender.fail_next(vec![ambiguous(), ambiguous()]);
    let reported = h.publish(&invest_deposit("unknown-1", "reported@example.com")).await;
    let silent = h.publish(&invest_deposit("unknown-2", "silent@example.com")).await;
    let detail = |id| format!("/api/v1/deliveries/{id}");
    let (_, shown) = h.call("GET", &detail(silent), Some(&operator), None).await;
    assert_eq!(shown["status"], "unknown", "{shown}");
    let why = shown["not_resendable"].as_str().unwrap();
    assert!(why.contains("result is unknown"), "{why}");

    // Within the window: neither the single resend nor the bulk one takes them.
    let reason = json!({ "reason": "the customer asked" });
    let resend = format!("/api/v1/deliveries/{silent}/resend");
    let (status, body) = h.call("POST", &resend, Some(&operator), Some(&reason)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let bulk = json!({
        "tenant": "acme-invest", "from": from, "until": until, "reason": "incident over",
    });
    let uri = "/api/v1/deliveries/resend-failed";
    let (status, page) = h.call("POST", uri, Some(&operator), Some(&bulk)).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert_eq!(page["items"], json!([]), "{page}");

    // SES reports on the first: sent, reconciled, with SES's message id.
    let mut event: serde_json::Value = serde_json::from_slice(
        &std::fs::read(
            common::manifest_dir().join("../../tests/fixtures/ses-events/delivery.json"),
        )
        .unwrap(),
    )
    .unwrap();
    event["mail"]["messageId"] = json!("ses-reported-later");
    event["mail"]["tags"] = json!({
        "tayori-tenant": ["acme-invest"], "tayori-delivery-id": [reported.to_string()],
    });
    let parsed = tayori_domain::parse_feedback(event.to_string().as_bytes()).unwrap();
    let feedback = tayori_postgres::PostgresFeedbackStore::new(h.store.pool().clone());
    feedback
        .record_feedback(
            FeedbackRecord::Event(&parsed),
            &FeedbackPolicy::default(),
            chrono::Utc::now(),
        )
        .await
        .unwrap();
    let (_, shown) = h.call("GET", &detail(reported), Some(&operator), None).await;
    assert_eq!(shown["status"], "sent", "{shown}");
    assert_eq!(shown["provider_message_id"], "ses-reported-later");
    assert!(shown["reconciled_at"].is_string(), "{shown}");
    // The console shows it so (the token's secret is the session cookie's value).
    let (secret, _) = h.token(Role::Viewer, &[]).await;
    let (_, _, page) =
        h.page("GET", &format!("/console/deliveries/{reported}"), Some(&secret), None).await;
    assert!(page.contains("sent (reconciled)"), "{page}");
    let (_, _, page) =
        h.page("GET", &format!("/console/deliveries/{silent}"), Some(&operator), None).await;
    assert!(page.contains("Cannot resend: its send"), "{page}");
    assert!(page.contains("result is unknown and SES may have accepted it"), "{page}");

    // The window passes (moved back in the database: four hours is the default).
    sqlx::query("update deliveries set decided_at = decided_at - interval '5 hours'")
        .execute(h.store.pool())
        .await
        .unwrap();
    let sends_before = h.sender.sent().len();
    let (status, page) = h.call("POST", uri, Some(&operator), Some(&bulk)).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    let items = page["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "only the one SES never reported on: {page}");
    assert_eq!(items[0]["origin"]["delivery_id"], silent.to_string());
    assert!(items[0]["origin"]["reason"].as_str().unwrap().starts_with("not seen by SES"));
    assert_eq!(items[0]["result"]["status"], "sent", "{page}");
    assert_eq!(h.sender.sent().len(), sends_before + 1, "no second email for the reconciled one");
    let (_, audit) =
        h.call("GET", "/api/v1/audit?action=delivery.unknown_expired", Some(&operator), None).await;
    assert_eq!(audit.as_array().map(Vec::len), Some(1), "{audit}");
}
