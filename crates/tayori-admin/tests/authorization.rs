//! The authorization matrix: every route × role × tenant scope, against real PostgreSQL.
//! Unauthenticated → 401; a tenant outside the token's scope → 404 (as if it did not exist);
//! a role that may not act → 403; otherwise success. Also: every route is in the OpenAPI
//! document, and the document lists no route the router lacks.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeSet;

use axum::http::StatusCode;
use serde_json::json;
use tayori_app::ports::Role;

use common::{harness, invest_deposit, invest_withdrawal};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// Reads: any role in scope.
    Read,
    /// Actions: operator and admin in scope.
    Act,
    /// Token management: admin of every tenant.
    Tokens,
    /// Public.
    Open,
}

struct Route {
    method: &'static str,
    /// The OpenAPI path template.
    template: &'static str,
    /// The concrete URI (placeholders filled below).
    uri: String,
    body: Option<serde_json::Value>,
    kind: Kind,
}

#[tokio::test]
async fn every_route_role_and_tenant_scope() {
    let h = harness().await;
    let sent = h.publish(&invest_deposit("matrix-1", "taro@example.com")).await;
    let rejected = h.publish(&invest_withdrawal("matrix-2", "hanako@example.com")).await;
    // A body without a key (no tenant), kept as an unkeyed rejection.
    h.handler
        .handle(&tayori_app::InboundMessage::first(b"{\"not\": \"an event\"}".to_vec()))
        .await
        .unwrap();
    let unkeyed =
        h.service.admin.unkeyed_rejections(None, 10).await.unwrap()[0].body_sha256.clone();
    // SES feedback for an email tayori has no delivery of: kept as unmatched, with no tenant.
    common::record_unmatched_feedback(&h, "matrix-unmatched").await;
    // A dead letter of acme-invest.
    let dead = invest_deposit("matrix-dead", "jiro@example.com").to_string();
    h.dead_letters.add("dead-1", dead.as_bytes(), chrono::Utc::now());

    let reason = json!({ "reason": "matrix" });
    let routes = vec![
        Route {
            method: "GET",
            template: "/api/v1/deliveries",
            uri: "/api/v1/deliveries?tenant=acme-invest".into(),
            body: None,
            kind: Kind::Read,
        },
        Route {
            method: "GET",
            template: "/api/v1/deliveries/{id}",
            uri: format!("/api/v1/deliveries/{sent}"),
            body: None,
            kind: Kind::Read,
        },
        Route {
            method: "POST",
            template: "/api/v1/deliveries/{id}/resend",
            uri: format!("/api/v1/deliveries/{sent}/resend"),
            body: Some(reason.clone()),
            kind: Kind::Act,
        },
        Route {
            method: "POST",
            template: "/api/v1/deliveries/resend-failed",
            uri: "/api/v1/deliveries/resend-failed".into(),
            body: Some(json!({
                "tenant": "acme-invest", "from": "2000-01-01T00:00:00Z",
                "until": "2100-01-01T00:00:00Z", "dry_run": true, "reason": "matrix",
            })),
            kind: Kind::Act,
        },
        Route {
            method: "POST",
            template: "/api/v1/deliveries/{id}/replay",
            uri: format!("/api/v1/deliveries/{rejected}/replay"),
            body: Some(reason.clone()),
            kind: Kind::Act,
        },
        Route {
            method: "GET",
            template: "/api/v1/rejected-events",
            uri: "/api/v1/rejected-events?tenant=acme-invest".into(),
            body: None,
            kind: Kind::Read,
        },
        Route {
            method: "POST",
            template: "/api/v1/rejected-events/replay",
            uri: "/api/v1/rejected-events/replay".into(),
            body: Some(json!({ "delivery_ids": [rejected.to_string()], "reason": "matrix" })),
            kind: Kind::Act,
        },
        Route {
            method: "POST",
            template: "/api/v1/rejected-events/unkeyed/{sha256}/replay",
            uri: format!("/api/v1/rejected-events/unkeyed/{unkeyed}/replay"),
            body: Some(reason.clone()),
            kind: Kind::Act,
        },
        Route {
            method: "GET",
            template: "/api/v1/feedback/unmatched",
            uri: "/api/v1/feedback/unmatched".into(),
            body: None,
            kind: Kind::Read,
        },
        Route {
            method: "GET",
            template: "/api/v1/suppressions",
            uri: "/api/v1/suppressions?tenant=acme-invest".into(),
            body: None,
            kind: Kind::Read,
        },
        Route {
            method: "POST",
            template: "/api/v1/suppressions",
            uri: "/api/v1/suppressions".into(),
            body: Some(
                json!({ "tenant": "acme-invest", "address": "gone@example.com", "reason": "matrix" }),
            ),
            kind: Kind::Act,
        },
        Route {
            method: "DELETE",
            template: "/api/v1/suppressions/{tenant}/{address}",
            uri: "/api/v1/suppressions/acme-invest/gone@example.com".into(),
            body: Some(reason.clone()),
            kind: Kind::Act,
        },
        Route {
            method: "GET",
            template: "/api/v1/templates",
            uri: "/api/v1/templates?tenant=acme-invest".into(),
            body: None,
            kind: Kind::Read,
        },
        Route {
            method: "GET",
            template: "/api/v1/templates/{tenant}/{event_type}/preview",
            uri: "/api/v1/templates/acme-invest/account.deposit_completed/preview".into(),
            body: None,
            kind: Kind::Read,
        },
        Route {
            method: "POST",
            template: "/api/v1/templates/{tenant}/{event_type}/preview",
            uri: "/api/v1/templates/acme-invest/account.deposit_completed/preview".into(),
            body: Some(
                json!({ "variables": { "amount": 1, "currency": "JPY", "deposited_at": "2026-11-27T09:58:00+09:00" } }),
            ),
            kind: Kind::Read,
        },
        Route {
            method: "GET",
            template: "/api/v1/stats",
            uri: "/api/v1/stats?tenant=acme-invest&window=week".into(),
            body: None,
            kind: Kind::Read,
        },
        Route {
            method: "GET",
            template: "/api/v1/reputation",
            uri: "/api/v1/reputation?tenant=acme-invest&window=week".into(),
            body: None,
            kind: Kind::Read,
        },
        Route {
            method: "POST",
            template: "/api/v1/tenants/{tenant}/pause",
            uri: "/api/v1/tenants/acme-invest/pause".into(),
            body: Some(json!({ "reason": "matrix" })),
            kind: Kind::Act,
        },
        Route {
            method: "GET",
            template: "/api/v1/tenants/{tenant}/held",
            uri: "/api/v1/tenants/acme-invest/held".into(),
            body: None,
            kind: Kind::Read,
        },
        // Between the pause and the resume: a discard is refused while the tenant sends.
        Route {
            method: "POST",
            template: "/api/v1/tenants/{tenant}/held/discard",
            uri: "/api/v1/tenants/acme-invest/held/discard".into(),
            body: Some(json!({ "reason": "matrix" })),
            kind: Kind::Act,
        },
        Route {
            method: "POST",
            template: "/api/v1/tenants/{tenant}/resume",
            uri: "/api/v1/tenants/acme-invest/resume".into(),
            body: Some(json!({ "reason": "matrix" })),
            kind: Kind::Act,
        },
        Route {
            method: "GET",
            template: "/api/v1/dead-letters",
            uri: "/api/v1/dead-letters".into(),
            body: None,
            kind: Kind::Read,
        },
        Route {
            method: "POST",
            template: "/api/v1/dead-letters/redrive",
            uri: "/api/v1/dead-letters/redrive".into(),
            body: Some(json!({ "max": 1, "reason": "matrix" })),
            kind: Kind::Act,
        },
        Route {
            method: "GET",
            template: "/api/v1/audit",
            uri: "/api/v1/audit?tenant=acme-invest".into(),
            body: None,
            kind: Kind::Read,
        },
        Route {
            method: "GET",
            template: "/api/v1/tokens",
            uri: "/api/v1/tokens".into(),
            body: None,
            kind: Kind::Tokens,
        },
        Route {
            method: "GET",
            template: "/api/v1/openapi.json",
            uri: "/api/v1/openapi.json".into(),
            body: None,
            kind: Kind::Open,
        },
    ];

    // Every documented operation is in the table and every table route is documented.
    let doc = serde_json::to_value(tayori_admin::openapi()).unwrap();
    assert_eq!(doc["openapi"], "3.1.0");
    let mut documented = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            documented.insert((method.to_uppercase(), path.clone()));
        }
    }
    let table: BTreeSet<_> = routes
        .iter()
        .filter(|r| r.kind != Kind::Open)
        .map(|r| (r.method.to_owned(), r.template.to_owned()))
        .collect();
    assert_eq!(documented, table, "the OpenAPI document and the routes differ");
    // ...and the served document is that one.
    let (status, served) = h.call("GET", "/api/v1/openapi.json", None, None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(served, doc);

    // (label, role, tenants); the objects above all belong to acme-invest.
    let principals: Vec<(&str, Role, Vec<&str>)> = vec![
        ("admin of all", Role::Admin, vec![]),
        ("operator of all", Role::Operator, vec![]),
        ("viewer of all", Role::Viewer, vec![]),
        ("admin of acme-invest", Role::Admin, vec!["acme-invest"]),
        ("operator of acme-invest", Role::Operator, vec!["acme-invest"]),
        ("viewer of acme-invest", Role::Viewer, vec!["acme-invest"]),
        ("admin of acme-bank", Role::Admin, vec!["acme-bank"]),
        ("operator of acme-bank", Role::Operator, vec!["acme-bank"]),
        ("viewer of acme-bank", Role::Viewer, vec!["acme-bank"]),
    ];
    let mut checked = 0;
    for route in &routes {
        // Unauthenticated, and with a made-up token.
        for token in [None, Some("tyr_0000"), Some("not-even-a-token")] {
            let (status, _) = h.call(route.method, &route.uri, token, route.body.as_ref()).await;
            let expected =
                if route.kind == Kind::Open { StatusCode::OK } else { StatusCode::UNAUTHORIZED };
            assert_eq!(status, expected, "{} {} with {token:?}", route.method, route.uri);
            checked += 1;
        }
        for (label, role, tenants) in &principals {
            let (secret, _) = h.token(*role, tenants).await;
            // Deleting needs something to delete.
            if route.method == "DELETE" {
                let (status, _) = h
                    .call("POST", "/api/v1/suppressions", Some(&h.token(Role::Admin, &[]).await.0),
                        Some(&json!({ "tenant": "acme-invest", "address": "gone@example.com", "reason": "setup" })))
                    .await;
                assert!(status.is_success());
            }
            let (status, body) =
                h.call(route.method, &route.uri, Some(&secret), route.body.as_ref()).await;
            let in_scope = tenants.is_empty() || tenants.contains(&"acme-invest");
            // The unkeyed rejection has no tenant: only tokens of every tenant see it.
            let in_scope = in_scope && (!route.template.contains("unkeyed") || tenants.is_empty());
            // Unmatched feedback has no tenant either: scoped tokens get an empty list.
            let unmatched = route.template == "/api/v1/feedback/unmatched";
            if unmatched {
                assert_eq!(status, StatusCode::OK, "{label}: {body}");
                let seen = body["feedback"].as_array().unwrap().len();
                assert_eq!(seen > 0, tenants.is_empty(), "{label} saw {seen} rows: {body}");
                checked += 1;
                continue;
            }
            // The dead-letter queue holds every tenant's messages: each token sees its tenants'
            // ones, the depth only with every tenant, and only those may redrive it.
            if route.template == "/api/v1/dead-letters" {
                assert_eq!(status, StatusCode::OK, "{label}: {body}");
                let seen = body["messages"].as_array().unwrap().len();
                assert_eq!(seen, usize::from(in_scope), "{label}: {body}");
                assert_eq!(body["depth"].is_null(), !tenants.is_empty(), "{label}: {body}");
                checked += 1;
                continue;
            }
            if route.template == "/api/v1/dead-letters/redrive" {
                let may = tenants.is_empty() && *role != Role::Viewer;
                let expected = if may { StatusCode::OK } else { StatusCode::FORBIDDEN };
                assert_eq!(status, expected, "{label}: {body}");
                checked += 1;
                continue;
            }
            let expected = match route.kind {
                Kind::Open => StatusCode::OK,
                Kind::Tokens if *role == Role::Admin && tenants.is_empty() => StatusCode::OK,
                Kind::Tokens => StatusCode::FORBIDDEN,
                _ if route.template == "/api/v1/rejected-events/replay" => {
                    if *role == Role::Viewer { StatusCode::FORBIDDEN } else { StatusCode::OK }
                }
                _ if !in_scope => StatusCode::NOT_FOUND,
                Kind::Act if *role == Role::Viewer => StatusCode::FORBIDDEN,
                Kind::Read | Kind::Act => StatusCode::OK,
            };
            let ok =
                if expected == StatusCode::OK { status.is_success() } else { status == expected };
            assert!(
                ok,
                "{label}: {} {} answered {status} {body}, expected {expected}",
                route.method, route.uri
            );
            // Replaying many reports, per item, that an out-of-scope delivery does not exist.
            if route.template == "/api/v1/rejected-events/replay" && status == StatusCode::OK {
                let item = &body[0];
                if in_scope {
                    assert_eq!(item["result"]["status"], "rejected", "{label}: {body}");
                } else {
                    assert!(
                        item["error"].as_str().unwrap().contains("no delivery"),
                        "{label}: {body}"
                    );
                }
            }
            // Lists in scope never show another tenant's rows.
            if status == StatusCode::OK && route.kind == Kind::Read && !in_scope {
                panic!("{label} saw {}", route.uri);
            }
            checked += 1;
        }
    }
    assert_eq!(checked, routes.len() * (3 + principals.len()));
}

#[tokio::test]
async fn scoped_tokens_never_see_other_tenants_in_lists_counts_or_previews() {
    let h = harness().await;
    h.publish(&invest_deposit("scope-1", "taro@example.com")).await;
    h.publish(&common::bank_deposit("scope-2", "misaki@example.com")).await;
    let (bank, _) = h.token(Role::Admin, &["acme-bank"]).await;

    let (_, list) = h.call("GET", "/api/v1/deliveries", Some(&bank), None).await;
    let tenants: BTreeSet<_> =
        list["deliveries"].as_array().unwrap().iter().map(|d| d["tenant"].to_string()).collect();
    assert_eq!(tenants, BTreeSet::from(["\"acme-bank\"".to_owned()]));

    let (_, stats) = h.call("GET", "/api/v1/stats?window=hour", Some(&bank), None).await;
    assert!(stats["counts"].as_array().unwrap().iter().all(|c| c["tenant"] == "acme-bank"));
    assert_eq!(stats["counts"].as_array().unwrap().len(), 1, "{stats}");

    let (_, templates) = h.call("GET", "/api/v1/templates", Some(&bank), None).await;
    assert!(!templates.as_array().unwrap().is_empty());
    assert!(templates.as_array().unwrap().iter().all(|t| t["tenant"] == "acme-bank"));

    let (status, _) = h
        .call(
            "GET",
            "/api/v1/templates/acme-invest/account.deposit_completed/preview",
            Some(&bank),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // Guessing the other tenant's delivery id: 404, the same as an id that never existed.
    let other = tayori_domain::IdempotencyKey::new(
        common::tenant("acme-invest"),
        tayori_domain::EventSource::parse("acme-invest/accounts").unwrap(),
        tayori_domain::EventId::parse("scope-1").unwrap(),
    )
    .delivery_id();
    let (status, guessed) =
        h.call("GET", &format!("/api/v1/deliveries/{other}"), Some(&bank), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (_, never) = h
        .call("GET", "/api/v1/deliveries/00000000-0000-4000-8000-000000000000", Some(&bank), None)
        .await;
    assert_eq!(guessed["error"], never["error"]);
}

#[tokio::test]
async fn revoked_and_expired_tokens_are_refused() {
    let h = harness().await;
    let (secret, id) = h.token(Role::Admin, &[]).await;
    assert_eq!(h.call("GET", "/api/v1/stats", Some(&secret), None).await.0, StatusCode::OK);
    h.service.revoke_token(None, &id).await.unwrap();
    assert_eq!(
        h.call("GET", "/api/v1/stats", Some(&secret), None).await.0,
        StatusCode::UNAUTHORIZED
    );

    let expired = h
        .service
        .issue_token(
            None,
            Role::Admin,
            tayori_app::ports::TenantScope::All,
            "expired",
            Some(chrono::Utc::now() - chrono::Duration::seconds(1)),
            common::test_random(),
        )
        .await
        .unwrap();
    let (status, _) = h.call("GET", "/api/v1/stats", Some(&expired.secret), None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    // Only the hash is stored.
    let stored: Vec<String> = sqlx_free_hashes(&h).await;
    assert!(stored.iter().all(|hash| hash.len() == 64 && !hash.contains("tyr_")));
    assert!(stored.contains(&tayori_app::admin::token_hash(&secret)));
}

async fn sqlx_free_hashes(h: &common::Harness) -> Vec<String> {
    // Read through the pool the store exposes; the admin crate itself never names SQL.
    use sqlx_check::fetch_hashes;
    fetch_hashes(h.store.pool()).await
}

mod sqlx_check {
    pub async fn fetch_hashes(pool: &sqlx::PgPool) -> Vec<String> {
        sqlx::query_scalar("select token_sha256 from admin_tokens").fetch_all(pool).await.unwrap()
    }
}
