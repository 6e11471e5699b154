//! The admin store and the suppression list on a fresh PostgreSQL database: the contracts the
//! admin use cases rely on (links taken once per number, audit written with each action and only
//! then, case-insensitive suppressions, scoped reads).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use chrono::{Duration, SubsecRound, Utc};
use tayori_app::ports::{
    AuditEntry, AuditLog, AuditQuery, DeliveryLink, DeliveryLinks, DeliveryQueries, DeliverySearch,
    LinkKind, MessageClass, SuppressionAdmin, SuppressionEntry, SuppressionList, SuppressionQuery,
    TokenStore,
};
use tayori_domain::{DeliveryId, DeliveryStatus, EmailAddress, TenantId};
use tayori_postgres::{PostgresAdminStore, PostgresStore, PostgresSuppressions};

const TOKEN: &str = "6f1e2c0a-8d4b-4e57-9a31-54c91f0b7d22";

fn audit(action: &str, tenant: Option<&str>) -> AuditEntry {
    AuditEntry {
        at: Utc::now(),
        token_id: TOKEN.into(),
        role: "operator".into(),
        action: action.into(),
        tenant: tenant.map(|t| TenantId::parse(t).unwrap()),
        object_kind: None,
        object_id: Some("obj".into()),
        reason: Some("why".into()),
        detail: serde_json::json!({ "k": 1 }),
    }
}

async fn stores() -> (PostgresAdminStore, PostgresSuppressions) {
    let config = tayori_postgres::testing::fresh_database().await;
    let store = PostgresStore::connect(&config).await.unwrap();
    (PostgresAdminStore::new(store.pool().clone()), PostgresSuppressions::new(store.pool().clone()))
}

#[tokio::test]
async fn links_are_taken_once_per_number_with_their_audit_entry() {
    let (admin, _) = stores().await;
    let tenant = TenantId::parse("acme-bank").unwrap();
    let origin = DeliveryId::parse("00000000-0000-4000-8000-000000000001").unwrap();
    let link = |n: u32, id: &str| DeliveryLink {
        tenant: tenant.clone(),
        delivery_id: DeliveryId::parse(id).unwrap(),
        origin,
        kind: LinkKind::Resend,
        n,
        reason: "r".into(),
        created_by: TOKEN.into(),
        // PostgreSQL keeps microseconds.
        created_at: Utc::now().trunc_subsecs(6),
    };
    assert_eq!(admin.last_link_number(&tenant, origin, LinkKind::Resend).await.unwrap(), 0);
    let first = link(1, "00000000-0000-4000-8000-000000000002");
    assert!(admin.record_link(&first, &audit("delivery.resend", Some("acme-bank"))).await.unwrap());
    // The same number again: refused, and nothing audited.
    let again = link(1, "00000000-0000-4000-8000-000000000003");
    assert!(
        !admin.record_link(&again, &audit("delivery.resend", Some("acme-bank"))).await.unwrap()
    );
    assert_eq!(admin.last_link_number(&tenant, origin, LinkKind::Resend).await.unwrap(), 1);
    assert_eq!(admin.last_link_number(&tenant, origin, LinkKind::Replay).await.unwrap(), 0);
    let log = admin.audit(&AuditQuery { limit: 10, ..Default::default() }).await.unwrap();
    assert_eq!(log.len(), 1);
    assert_eq!(log[0].entry.detail, serde_json::json!({ "k": 1 }));
    // Both ends see the link; another tenant does not.
    assert_eq!(admin.links(&tenant, origin).await.unwrap(), vec![first.clone()]);
    assert_eq!(admin.links(&tenant, first.delivery_id).await.unwrap().len(), 1);
    let other = TenantId::parse("acme-invest").unwrap();
    assert!(admin.links(&other, origin).await.unwrap().is_empty());
}

#[tokio::test]
async fn audit_reads_filter_by_tenant_token_action_and_page() {
    let (admin, _) = stores().await;
    for (action, tenant) in
        [("a.one", Some("acme-bank")), ("a.two", Some("acme-invest")), ("token.create", None)]
    {
        admin.record_audit(&audit(action, tenant)).await.unwrap();
    }
    let all = admin.audit(&AuditQuery { limit: 10, ..Default::default() }).await.unwrap();
    assert_eq!(
        all.iter().map(|r| r.entry.action.as_str()).collect::<Vec<_>>(),
        ["token.create", "a.two", "a.one"]
    );
    let bank = AuditQuery {
        tenants: Some(vec![TenantId::parse("acme-bank").unwrap()]),
        limit: 10,
        ..Default::default()
    };
    assert_eq!(admin.audit(&bank).await.unwrap().len(), 1, "no entries without a tenant");
    let older = AuditQuery { before: Some(all[0].audit_id), limit: 1, ..Default::default() };
    assert_eq!(admin.audit(&older).await.unwrap()[0].entry.action, "a.two");
    let nobody =
        AuditQuery { token_id: Some("not-a-uuid".into()), limit: 10, ..Default::default() };
    assert!(admin.audit(&nobody).await.unwrap().is_empty());
}

#[tokio::test]
async fn suppressions_match_without_case_and_only_their_tenant() {
    let (admin, list) = stores().await;
    let bank = TenantId::parse("acme-bank").unwrap();
    let invest = TenantId::parse("acme-invest").unwrap();
    let entry = SuppressionEntry {
        tenant: bank.clone(),
        address: EmailAddress::parse("Taro@Example.com").unwrap(),
        reason: "asked".into(),
        cause: "operator".into(),
        created_by: TOKEN.into(),
        created_at: Utc::now() - Duration::seconds(1),
    };
    assert!(
        admin.add_suppression(&entry, &audit("suppression.add", Some("acme-bank"))).await.unwrap()
    );
    let lower = EmailAddress::parse("taro@example.com").unwrap();
    let same = SuppressionEntry { address: lower.clone(), ..entry.clone() };
    assert!(
        !admin.add_suppression(&same, &audit("suppression.add", Some("acme-bank"))).await.unwrap()
    );

    assert_eq!(
        list.check(&bank, &lower, MessageClass::Transactional).await.unwrap().unwrap().reason,
        "asked"
    );
    assert!(list.check(&invest, &lower, MessageClass::Transactional).await.unwrap().is_none());
    let query =
        SuppressionQuery { tenants: Some(vec![invest.clone()]), limit: 10, ..Default::default() };
    assert!(admin.suppressions(&query).await.unwrap().is_empty());

    assert!(
        admin
            .remove_suppression(&bank, &lower, &audit("suppression.remove", Some("acme-bank")))
            .await
            .unwrap()
    );
    assert!(
        !admin
            .remove_suppression(&bank, &lower, &audit("suppression.remove", Some("acme-bank")))
            .await
            .unwrap()
    );
    assert!(list.check(&bank, &lower, MessageClass::Transactional).await.unwrap().is_none());
    let log = admin.audit(&AuditQuery { limit: 10, ..Default::default() }).await.unwrap();
    assert_eq!(log.len(), 2, "one add, one remove: refused changes are not audited");
}

/// The status searches read the two partial status indexes (decided statuses; `processing`,
/// which the event path's claims write without a hot spot) and find exactly the rows of that
/// status, newest first, in one tenant and in all.
#[tokio::test]
async fn status_searches_walk_the_partial_status_indexes() {
    let config = tayori_postgres::testing::fresh_database().await;
    let store = PostgresStore::connect(&config).await.unwrap();
    let admin = PostgresAdminStore::new(store.pool().clone());
    // 20,000 deliveries per tenant, one a second: 1 in 100 failed, 1 in 250 rejected, 1 in 500
    // suppressed, 1 in 1,000 still processing (as stuck ones would be), the rest sent.
    sqlx::query(
        "insert into deliveries (tenant_id, source, event_id, delivery_id, status, created_at, \
             updated_at) \
         select tenant, 'bench', i::text, md5(tenant || i)::uuid, \
             case when i % 1000 = 0 then 'processing' when i % 500 = 0 then 'suppressed' \
                  when i % 250 = 0 then 'rejected' when i % 100 = 0 then 'failed' \
                  else 'sent' end, \
             now() - make_interval(secs => 20000 - i), now() \
         from generate_series(1, 20000) as i, \
              unnest(array['acme-bank', 'acme-invest']) as tenant",
    )
    .execute(store.pool())
    .await
    .unwrap();
    sqlx::query("analyze deliveries").execute(store.pool()).await.unwrap();

    let bank = TenantId::parse("acme-bank").unwrap();
    let statuses = [
        (DeliveryStatus::Processing, 20),
        (DeliveryStatus::Suppressed, 20),
        (DeliveryStatus::Rejected, 40),
        (DeliveryStatus::Failed, 160),
        (DeliveryStatus::Sent, 19_760),
    ];
    for (status, in_one_tenant) in statuses {
        for (tenants, matching) in
            [(Some(vec![bank.clone()]), in_one_tenant), (None, 2 * in_one_tenant)]
        {
            let search = DeliverySearch {
                tenants: tenants.clone(),
                status: Some(status),
                limit: 50,
                ..Default::default()
            };
            let page = admin.search_deliveries(&search).await.unwrap();
            assert_eq!(page.deliveries.len(), matching.min(50), "{status:?} in {tenants:?}");
            assert!(page.deliveries.iter().all(|d| d.status == status), "{status:?}");
            assert!(
                page.deliveries
                    .windows(2)
                    .all(|w| (w[0].created_at, w[0].delivery_id)
                        >= (w[1].created_at, w[1].delivery_id)),
                "newest first"
            );
            if tenants.is_some() {
                assert!(page.deliveries.iter().all(|d| d.tenant == bank));
            }
        }
    }

    let plan = |status| {
        let search = DeliverySearch {
            tenants: Some(vec![bank.clone()]),
            status: Some(status),
            limit: 50,
            ..Default::default()
        };
        let admin = &admin;
        async move { admin.explain_search(&search).await.unwrap() }
    };
    let processing = plan(DeliveryStatus::Processing).await;
    assert!(processing.contains("deliveries_processing"), "{processing}");
    for decided in [DeliveryStatus::Failed, DeliveryStatus::Rejected, DeliveryStatus::Suppressed] {
        let plan = plan(decided).await;
        assert!(plan.contains("deliveries_tenant_decided_created"), "{decided:?}: {plan}");
    }
}

#[tokio::test]
async fn console_sessions_follow_their_contract() {
    use tayori_app::ports::{ConsoleSessionStore, Role, SessionRecord, TenantScope, TokenRecord};
    let (admin, _) = stores().await;
    let now = Utc::now().trunc_subsecs(6);
    let token = |id: &str, hash: &str| {
        let record = TokenRecord {
            token_id: id.into(),
            role: Role::Viewer,
            scope: TenantScope::All,
            label: String::new(),
            created_at: now,
            expires_at: None,
            revoked_at: None,
            last_used_at: None,
        };
        let admin = admin.clone();
        let hash = hash.to_owned();
        async move { admin.create_token(&record, &hash, &audit("token.create", None)).await.unwrap() }
    };
    let (live, revoked) =
        ("11111111-1111-4111-8111-111111111111", "22222222-2222-4222-8222-222222222222");
    token(live, "live-hash").await;
    token(revoked, "revoked-hash").await;
    let session = |hash: &str, token_id: &str, created_ago: i64, seen_ago: i64| SessionRecord {
        session_sha256: hash.into(),
        token_id: token_id.into(),
        created_at: now - Duration::minutes(created_ago),
        last_seen_at: now - Duration::minutes(seen_ago),
    };
    let sign_in = audit("console.sign_in", None);
    let sessions = [
        session("fresh", live, 10, 1),
        session("idle", live, 60, 31),
        session("old", live, 13 * 60, 1),
        session("of-revoked", revoked, 10, 1),
    ];
    for s in &sessions {
        admin.create_session(s, &sign_in).await.unwrap();
    }
    // Each creation wrote its audit entry in the same transaction.
    let query =
        AuditQuery { action: Some("console.sign_in".into()), limit: 10, ..Default::default() };
    assert_eq!(admin.audit(&query).await.unwrap().len(), 4);
    // A session id is stored once: a second row under the same hash is refused, and not audited.
    assert!(admin.create_session(&sessions[0], &sign_in).await.is_err());
    assert_eq!(admin.audit(&query).await.unwrap().len(), 4);

    let (found, its_token) = admin.session_by_hash("fresh").await.unwrap().unwrap();
    assert_eq!(found, sessions[0]);
    assert_eq!(its_token.token_id, live);
    assert!(admin.session_by_hash("nothing").await.unwrap().is_none());

    // Touching moves the session's and its token's last use.
    let later = now + Duration::seconds(90);
    admin.touch_session(&found, later).await.unwrap();
    let (touched, its_token) = admin.session_by_hash("fresh").await.unwrap().unwrap();
    assert_eq!(touched.last_seen_at, later);
    assert_eq!(its_token.last_used_at, Some(later));

    // A revoked token's sessions are found with the token as it is now, and pruned.
    let revoke = audit("token.revoke", None);
    assert!(admin.revoke_token(revoked, now, &revoke).await.unwrap());
    let (_, its_token) = admin.session_by_hash("of-revoked").await.unwrap().unwrap();
    assert!(its_token.revoked_at.is_some());
    let pruned = admin
        .delete_expired_sessions(now - Duration::minutes(30), now - Duration::hours(12), now)
        .await
        .unwrap();
    assert_eq!(pruned, 3, "idle, old and of-revoked");
    for gone in ["idle", "old", "of-revoked"] {
        assert!(admin.session_by_hash(gone).await.unwrap().is_none(), "{gone}");
    }
    assert!(admin.delete_session("fresh").await.unwrap());
    assert!(admin.session_by_hash("fresh").await.unwrap().is_none());
    assert!(!admin.delete_session("fresh").await.unwrap());
}
