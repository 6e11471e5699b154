//! Personal data by role, against real PostgreSQL: viewers and operators see no address, name,
//! sensitive variable or link token anywhere, in the API or the console, however hostile the
//! body that brought it (a raw body that broke the contract, a body that is not JSON, an SES
//! error text quoting the recipient, a clicked reset link); admins see it all. An exact-address
//! search by a non-admin is audited.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use axum::http::StatusCode;
use serde_json::{Value, json};
use tayori_app::ports::{FeedbackPolicy, FeedbackRecord, FeedbackStore, Role, SendError};

use common::harness;

/// A password-reset event for acme-invest (its `reset_url` is declared sensitive).
fn reset_event(id: &str, email: &str, reset_url: &str, contact: &str) -> Value {
    json!({
        "specversion": "1.0",
        "id": id,
        "source": "acme-invest/auth",
        "type": "auth.password_reset",
        "tenant": "acme-invest",
        "subject": format!("reset for {email}"),
        "data": {
            "to": { "email": email, "name": "Victim Person", "locale": "en" },
            "variables": {
                "reset_url": reset_url, "expires_in_minutes": 30,
                "requested_at": "2026-12-07T08:00:00+09:00", "contact": contact
            }
        }
    })
}

#[tokio::test]
async fn viewers_and_operators_see_no_personal_data_whatever_the_body_admins_see_it_all() {
    let h = harness().await;

    // 1. A keyed event that broke the contract (a one-letter locale): its raw body is kept.
    let mut raw = reset_event(
        "mask-raw",
        "victim.raw@corp.example",
        "https://acme.example/reset?t=SECRET-RAW-123",
        "other.raw@corp.example",
    );
    raw["data"]["to"]["locale"] = json!("x");
    raw["data"]["to"]["name"] = json!("Victim Rawname");
    let rejected = h.publish(&raw).await;

    // 2. A send SES refused with a text that quotes the recipient.
    h.sender.fail_next(vec![SendError::Rejected {
        reason: "MessageRejected: Email address is not verified. The following identities \
                 failed the check in region US-EAST-1: victim.sesfail@corp.example"
            .into(),
    }]);
    let failed = h
        .publish(&reset_event(
            "mask-failed",
            "victim.sesfail@corp.example",
            "https://acme.example/reset?t=SECRET-FAILED-321",
            "x@y.example",
        ))
        .await;

    // 3. A sent reset email whose link SES reports clicked.
    let clicked = h
        .publish(&reset_event(
            "mask-click",
            "victim.click@corp.example",
            "https://acme.example/reset?t=SECRET-CLICK-456",
            "other.click@corp.example",
        ))
        .await;
    let click = json!({
        "eventType": "Click",
        "mail": { "tags": {
            "tayori-tenant": ["acme-invest"], "tayori-delivery-id": [clicked.to_string()],
        } },
        "click": { "link": "https://acme.example/reset?t=SECRET-CLICK-456",
                   "timestamp": "2026-12-07T10:00:00Z", "ipAddress": "192.0.2.1" },
    });
    let click = tayori_domain::parse_feedback(click.to_string().as_bytes()).unwrap();
    let feedback = tayori_postgres::PostgresFeedbackStore::new(h.store.pool().clone());
    let policy = FeedbackPolicy::default();
    let now = chrono::Utc::now();
    let recorded =
        feedback.record_feedback(FeedbackRecord::Event(&click), &policy, now).await.unwrap();
    assert!(
        matches!(recorded, tayori_app::ports::FeedbackRecorded::Matched { .. }),
        "{recorded:?}"
    );

    // 4. A body that is not JSON at all (no key): kept as an unkeyed rejection.
    let garbage = br#"not json {"email":"victim.unkeyed@corp.example","code":"SECRET-UNKEYED-789""#;
    h.handler.handle(&tayori_app::InboundMessage::first(garbage.to_vec())).await.unwrap();

    let personal = [
        "victim.raw@corp.example",
        "Victim Rawname",
        "SECRET-RAW-123",
        "other.raw@corp.example",
        "victim.sesfail@corp.example",
        "victim.click@corp.example",
        "other.click@corp.example",
        "SECRET-CLICK-456",
        "victim.unkeyed@corp.example",
        "SECRET-UNKEYED-789",
    ];
    let api = [
        format!("/api/v1/deliveries/{rejected}"),
        format!("/api/v1/deliveries/{failed}"),
        format!("/api/v1/deliveries/{clicked}"),
        "/api/v1/deliveries?tenant=acme-invest".to_owned(),
        "/api/v1/rejected-events".to_owned(),
    ];
    let console = [
        format!("/console/deliveries/{rejected}"),
        format!("/console/deliveries/{failed}"),
        format!("/console/deliveries/{clicked}"),
        "/console/deliveries".to_owned(),
        "/console/rejected".to_owned(),
    ];
    for role in [Role::Admin, Role::Viewer, Role::Operator] {
        let (token, _) = h.token(role, &[]).await;
        let mut seen = String::new();
        for uri in &api {
            let (status, body) = h.call("GET", uri, Some(&token), None).await;
            assert_eq!(status, StatusCode::OK, "{role} {uri}: {body}");
            seen.push_str(&body.to_string());
        }
        for uri in &console {
            let (status, _, page) = h.page("GET", uri, Some(&token), None).await;
            assert_eq!(status, StatusCode::OK, "{role} {uri}");
            seen.push_str(&page);
        }
        if role == Role::Admin {
            // The same pages carry all of it for an admin: the masking, not the pages, hides it.
            for text in personal {
                assert!(seen.contains(text), "an admin sees {text}");
            }
        } else {
            for text in personal {
                assert!(!seen.contains(text), "{role} sees {text}");
            }
            // Still useful: the masked forms and the body's shape are there.
            assert!(seen.contains("v***@c***.example"), "{role}: masked addresses shown");
            assert!(seen.contains("https://acme.example/***"), "{role}: the clicked link's host");
            assert!(seen.contains("not JSON: shown to admins only"), "{role}");
            assert!(seen.contains("MessageRejected"), "{role}: the SES error, masked: {seen}");
        }
    }

    // Whether an address was mailed is personal too: a non-admin's exact search is audited
    // (the address masked and hashed), an admin's is not.
    let (admin, _) = h.token(Role::Admin, &[]).await;
    let audited = |entries: &Value| {
        entries
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["action"] == "deliveries.search_by_address")
            .cloned()
            .collect::<Vec<_>>()
    };
    let search = "/api/v1/deliveries?recipient=victim.sesfail@corp.example";
    let (status, found) = h.call("GET", search, Some(&admin), None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(found["deliveries"].as_array().unwrap().len(), 1, "{found}");
    let (_, log) = h.call("GET", "/api/v1/audit", Some(&admin), None).await;
    assert!(audited(&log).is_empty(), "an admin's search is not audited: {log}");
    for role in [Role::Viewer, Role::Operator] {
        let (token, token_id) = h.token(role, &["acme-invest"]).await;
        let (status, found) = h.call("GET", search, Some(&token), None).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(found["deliveries"][0]["recipient"], "v***@c***.example", "{found}");
        let (_, log) = h.call("GET", "/api/v1/audit", Some(&admin), None).await;
        let entry = audited(&log)
            .into_iter()
            .find(|e| e["token_id"] == token_id.as_str())
            .unwrap_or_else(|| panic!("{role}'s search is audited: {log}"));
        assert_eq!(entry["object_id"], "v***@c***.example");
        assert!(!entry.to_string().contains("victim.sesfail"), "{entry}");
    }
}
