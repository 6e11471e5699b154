//! The embedded migrations on a fresh PostgreSQL database: the `concurrently` ones (outside a
//! transaction) leave valid indexes, the foreign keys to `deliveries` are checked through its
//! unique delivery id index even before any statistics, and a database that a newer version
//! migrated further still lets this version start (a rollback needs no down-migration).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use sqlx::Row;
use tayori_postgres::PostgresStore;

#[tokio::test]
async fn the_status_indexes_are_the_two_partial_ones_and_valid() {
    let config = tayori_postgres::testing::fresh_database().await;
    let store = PostgresStore::connect(&config).await.unwrap();
    let indexes: Vec<(String, bool)> = sqlx::query_as(
        "select c.relname::text, i.indisvalid from pg_index i \
         join pg_class c on c.oid = i.indexrelid \
         where i.indrelid = 'deliveries'::regclass and c.relname::text like '%status%' \
            or i.indrelid = 'deliveries'::regclass and c.relname::text in \
               ('deliveries_tenant_decided_created', 'deliveries_processing') \
         order by 1",
    )
    .fetch_all(store.pool())
    .await
    .unwrap();
    assert_eq!(
        indexes,
        vec![
            ("deliveries_processing".to_owned(), true),
            ("deliveries_tenant_decided_created".to_owned(), true),
        ],
        "the old deliveries_tenant_status_created is dropped"
    );
}

#[tokio::test]
async fn a_database_migrated_by_a_newer_version_still_starts_this_one() {
    let config = tayori_postgres::testing::fresh_database().await;
    let store = PostgresStore::connect(&config).await.unwrap();
    sqlx::query(
        "insert into _sqlx_migrations (version, description, success, checksum, execution_time) \
         values (99999999, 'added by a newer version', true, '\\x00', 0)",
    )
    .execute(store.pool())
    .await
    .unwrap();
    store.migrate().await.expect("an unknown, newer migration is not an error");
    store.migrate().await.expect("and migrating again changes nothing");
}

/// PostgreSQL checks each new attempt or feedback row with `SELECT 1 FROM ONLY deliveries x WHERE
/// <referenced column> = $1 [AND ...] FOR KEY SHARE OF x` (`ri_triggers.c`), planned once per
/// connection and kept until the table's statistics change. On a new database autovacuum has not
/// analyzed `deliveries` yet; with the old `(tenant_id, delivery_id)` key that plan scanned an
/// index leading with the tenant through the tenant's whole range for every row, and the store
/// slowed as the table grew (docs/benchmarks.md, "Foreign keys on delivery_id").
#[tokio::test]
async fn foreign_keys_to_deliveries_are_checked_by_the_unique_delivery_id_index_before_any_statistics()
 {
    let config = tayori_postgres::testing::fresh_database().await;
    let store = PostgresStore::connect(&config).await.unwrap();
    let mut conn = store.pool().acquire().await.unwrap();
    let never_analyzed: f32 =
        sqlx::query_scalar("select reltuples from pg_class where oid = 'deliveries'::regclass")
            .fetch_one(&mut *conn)
            .await
            .unwrap();
    assert!(never_analyzed < 0.0, "the planner has no statistics yet ({never_analyzed})");

    let delivery_id_indexes: Vec<(String, bool, bool)> = sqlx::query_as(
        "select c.relname::text, i.indisunique, i.indisvalid from pg_index i \
         join pg_class c on c.oid = i.indexrelid \
         where i.indrelid = 'deliveries'::regclass and c.relname::text like '%delivery_id%' \
         order by 1",
    )
    .fetch_all(&mut *conn)
    .await
    .unwrap();
    assert_eq!(
        delivery_id_indexes,
        [("deliveries_delivery_id_key".to_owned(), true, true)],
        "one valid unique index (0009); the old deliveries_delivery_id and the \
         unique (tenant_id, delivery_id) are dropped (0012, 0010)"
    );

    for (table, foreign_key) in [
        ("delivery_attempts", "delivery_attempts_delivery_id_fkey"),
        ("delivery_feedback", "delivery_feedback_delivery_id_fkey"),
    ] {
        let row = sqlx::query(
            "select c.convalidated, array(select a.attname::text \
                 from unnest(c.confkey) with ordinality as k(attnum, n) \
                 join pg_attribute a on a.attrelid = c.confrelid and a.attnum = k.attnum \
                 order by k.n) as columns \
             from pg_constraint c \
             where c.conrelid = $1::regclass and c.conname = $2 and c.contype = 'f' \
               and c.confrelid = 'deliveries'::regclass",
        )
        .bind(table)
        .bind(foreign_key)
        .fetch_optional(&mut *conn)
        .await
        .unwrap()
        .unwrap_or_else(|| panic!("{table} has no foreign key {foreign_key} to deliveries"));
        let columns: Vec<String> = row.get("columns");
        assert!(row.get::<bool, _>("convalidated"), "{foreign_key} is validated (0011)");
        assert_eq!(columns, ["delivery_id"], "{foreign_key} references");
    }

    // The trigger's query, planned as it is kept: generic, for any delivery id.
    sqlx::raw_sql(
        "set plan_cache_mode = force_generic_plan; \
         prepare ri_check as select 1 from only deliveries x where delivery_id = $1 \
         for key share of x",
    )
    .execute(&mut *conn)
    .await
    .unwrap();
    let plan: Vec<String> =
        sqlx::query_scalar("explain execute ri_check('6f1e2c0a-8d4b-4e57-9a31-54c91f0b7d22')")
            .fetch_all(&mut *conn)
            .await
            .unwrap();
    let plan = plan.join("\n");
    assert!(
        plan.contains("Index Scan using deliveries_delivery_id_key on deliveries")
            && plan.contains("Index Cond: (delivery_id = $1)"),
        "the foreign keys' check walks the unique delivery id index:\n{plan}"
    );
}
