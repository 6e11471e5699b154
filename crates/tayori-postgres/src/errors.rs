use tayori_app::ports::StoreError;

/// Maps a sqlx error to the variants the use case branches on: anything that a retry after a
/// pause can cure (a lost connection, a restarting server, a full pool) is `Unavailable`;
/// a write the server refuses for the data it carries is `Refused`, since the same data would
/// be refused again.
pub(crate) fn store_error(error: sqlx::Error) -> StoreError {
    match &error {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => StoreError::Unavailable(error.to_string()),
        sqlx::Error::Database(db) if db.code().is_some_and(|c| is_transient_sqlstate(&c)) => {
            StoreError::Unavailable(error.to_string())
        }
        sqlx::Error::Database(db) if db.code().is_some_and(|c| is_data_sqlstate(&c)) => {
            StoreError::Refused(error.to_string())
        }
        _ => StoreError::Unexpected(anyhow::Error::new(error)),
    }
}

/// SQLSTATEs that mean "try again": connection exceptions (08), serialization failures and
/// deadlocks (40001, 40P01), too many connections (53300), server shutting down or starting
/// (57P01–57P03), and the session limits firing (`SessionLimits`): a statement cancelled by
/// `statement_timeout` (57014), a lock not granted within `lock_timeout` (55P03), a session
/// ended by `idle_in_transaction_session_timeout` (25P03).
fn is_transient_sqlstate(code: &str) -> bool {
    code.starts_with("08")
        || matches!(
            code,
            "40001" | "40P01" | "53300" | "57P01" | "57P02" | "57P03" | "57014" | "55P03" | "25P03"
        )
}

/// SQLSTATEs that mean "not this data, ever": data exceptions (class 22: NUL in text is 22021,
/// `\u0000` in `jsonb` 22P05, malformed input 22P02, a value out of range 22003/22008) and
/// program limits (54000: a value too large for an index row, ...). The write fails the same
/// way however often it is tried, so retrying it only keeps its event from an outcome.
fn is_data_sqlstate(code: &str) -> bool {
    code.starts_with("22") || code == "54000"
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use sqlx::PgPool;

    use super::*;

    #[test]
    fn classifies_sqlstates() {
        assert!(is_transient_sqlstate("08006"));
        assert!(is_transient_sqlstate("57P01"));
        assert!(is_transient_sqlstate("57014"), "statement_timeout");
        assert!(is_transient_sqlstate("55P03"), "lock_timeout");
        assert!(!is_transient_sqlstate("23505"));
        for data in ["22021", "22P05", "22P02", "22003", "54000"] {
            assert!(is_data_sqlstate(data), "{data}");
            assert!(!is_transient_sqlstate(data), "{data}");
        }
        for other in ["23505", "42P01", "08006", "54001"] {
            assert!(!is_data_sqlstate(other), "{other}");
        }
        assert!(matches!(store_error(sqlx::Error::PoolTimedOut), StoreError::Unavailable(_)));
        assert!(matches!(store_error(sqlx::Error::RowNotFound), StoreError::Unexpected(_)));
    }

    /// What the server really answers for data it cannot keep, through the real driver: each is
    /// `Refused`, never `Unavailable` (which the event path would retry forever).
    #[tokio::test]
    async fn the_server_refusing_data_is_refused_not_unavailable() {
        let config = crate::testing::fresh_database().await;
        let pool = PgPool::connect(&config.url).await.unwrap();
        sqlx::query("create table t (s text, j jsonb, n int4, k text primary key)")
            .execute(&pool)
            .await
            .unwrap();
        let nul = sqlx::query("insert into t (k, s) values ('a', $1)").bind("a\0b");
        let escape = sqlx::query("insert into t (k, j) values ('b', $1::jsonb)")
            .bind(serde_json::json!({ "v": "a\u{0}b" }).to_string());
        let malformed = sqlx::query("insert into t (k, n) values ('c', $1::text::int4)").bind("x");
        // Past the B-tree's limit for one index row (about 2.7 kB), incompressible.
        let huge_key: String =
            (0..8_000u32).map(|i| char::from_u32(0x4e00 + (i * 7919) % 20_000).unwrap()).collect();
        let too_large = sqlx::query("insert into t (k) values ($1)").bind(huge_key);
        for (expected, query) in
            [("22021", nul), ("22P05", escape), ("22P02", malformed), ("54000", too_large)]
        {
            let error = query.execute(&pool).await.expect_err(expected);
            let code = error.as_database_error().and_then(|e| e.code()).unwrap().into_owned();
            assert_eq!(code, expected, "{error}");
            let mapped = store_error(error);
            assert!(matches!(mapped, StoreError::Refused(_)), "{expected}: {mapped:?}");
        }
        let count: i64 =
            sqlx::query_scalar("select count(*) from t").fetch_one(&pool).await.unwrap();
        assert_eq!(count, 0, "nothing was written");
    }
}
