//! The embedded migrations on a fresh PostgreSQL database: the `concurrently` ones (outside a
//! transaction) leave valid indexes, and a database that a newer version migrated further still
//! lets this version start (a rollback needs no down-migration).
#![allow(clippy::unwrap_used, clippy::expect_used)]

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
