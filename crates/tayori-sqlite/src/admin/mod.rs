//! The admin store on SQLite, so `tayori dev` serves the console and the admin API with nothing
//! to install: the same ports as PostgreSQL's admin store, proven by the same conformance suite
//! (`tayori_app::testing::admin_conformance`). Every action's audit entry is written in the same
//! transaction as the action.

use async_trait::async_trait;
use sqlx::sqlite::SqlitePool;
use tayori_app::ports::{StoreError, StoreReadiness};

use crate::store::store_error;

/// The admin store on the delivery store's SQLite file (one pool for both).
#[derive(Debug, Clone)]
pub struct SqliteAdminStore {
    pub(crate) pool: SqlitePool,
}

impl SqliteAdminStore {
    /// Shares the delivery store's pool; its migrations have been applied at open.
    pub fn new(store: &crate::SqliteStore) -> Self {
        Self { pool: store.pool().clone() }
    }
}

#[async_trait]
impl StoreReadiness for SqliteAdminStore {
    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("select 1").execute(&self.pool).await.map_err(store_error)?;
        Ok(())
    }
}
