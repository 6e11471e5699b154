//! A fresh, migrated database per run on the cluster the admin URL names.

use anyhow::Context;
use sqlx::postgres::{PgPool, PgPoolOptions};
use sqlx::{Executor, Row};

/// The bench's database: created empty and migrated, dropped by [`BenchDatabase::drop_now`].
pub struct BenchDatabase {
    admin_url: String,
    /// Its name.
    pub name: String,
    /// Its URL.
    pub url: String,
}

impl BenchDatabase {
    /// Creates `tayori_bench_<pid>_<time>` on the cluster of `admin_url`.
    pub async fn create(admin_url: &str) -> anyhow::Result<Self> {
        let name = format!(
            "tayori_bench_{}_{}",
            std::process::id(),
            chrono::Utc::now().format("%Y%m%d%H%M%S")
        );
        let admin = admin(admin_url).await?;
        admin
            .execute(sqlx::AssertSqlSafe(format!("create database {name}")))
            .await
            .with_context(|| format!("cannot create the database {name}"))?;
        admin.close().await;
        let (base, _) = admin_url.rsplit_once('/').unwrap_or((admin_url, ""));
        let url = format!("{base}/{name}");
        Ok(Self { admin_url: admin_url.to_owned(), name, url })
    }

    /// Drops the database (closing any connection left on it).
    pub async fn drop_now(&self) -> anyhow::Result<()> {
        let admin = admin(&self.admin_url).await?;
        admin
            .execute(sqlx::AssertSqlSafe(format!(
                "drop database if exists {} with (force)",
                self.name
            )))
            .await
            .with_context(|| format!("cannot drop the database {}", self.name))?;
        admin.close().await;
        Ok(())
    }
}

async fn admin(url: &str) -> anyhow::Result<PgPool> {
    PgPoolOptions::new()
        .max_connections(1)
        .connect(url)
        .await
        .with_context(|| format!("cannot connect to PostgreSQL at {url} (--database-url)"))
}

/// The server settings that matter to the figures.
pub async fn settings(pool: &PgPool) -> anyhow::Result<Vec<(String, String)>> {
    let mut settings = Vec::new();
    for name in [
        "server_version",
        "fsync",
        "synchronous_commit",
        "wal_sync_method",
        "full_page_writes",
        "shared_buffers",
        "max_connections",
        "data_directory",
    ] {
        let row = pool
            .fetch_one(sqlx::AssertSqlSafe(format!("show {name}")))
            .await
            .with_context(|| format!("cannot read the setting {name}"))?;
        settings.push((name.to_owned(), row.try_get::<String, _>(0)?));
    }
    Ok(settings)
}
