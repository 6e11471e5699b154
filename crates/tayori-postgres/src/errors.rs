use tayori_app::ports::StoreError;

/// Maps a sqlx error to the variants the use case branches on: anything that a retry after a
/// pause can cure (a lost connection, a restarting server, a full pool) is `Unavailable`.
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_sqlstates() {
        assert!(is_transient_sqlstate("08006"));
        assert!(is_transient_sqlstate("57P01"));
        assert!(is_transient_sqlstate("57014"), "statement_timeout");
        assert!(is_transient_sqlstate("55P03"), "lock_timeout");
        assert!(!is_transient_sqlstate("23505"));
        assert!(matches!(store_error(sqlx::Error::PoolTimedOut), StoreError::Unavailable(_)));
        assert!(matches!(store_error(sqlx::Error::RowNotFound), StoreError::Unexpected(_)));
    }
}
