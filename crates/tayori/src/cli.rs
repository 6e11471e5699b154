//! The command line.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::telemetry::LogFormat;

/// tayori (便り, "a letter"): turns product events into tenants' emails, exactly once per event.
#[derive(Parser)]
#[command(name = "tayori", version, propagate_version = true)]
pub struct Cli {
    /// How log lines look.
    #[arg(long, global = true, value_enum, default_value = "text", env = "TAYORI_LOG_FORMAT")]
    pub log_format: LogFormat,

    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Subcommand)]
pub enum Command {
    /// Run the whole path on your machine: an HTTP intake feeding an in-process queue, your
    /// templates, SQLite (or PostgreSQL) for delivery state, and `.eml` files instead of SES.
    ///
    /// Post events to http://127.0.0.1:8080/v1/events and open the files in the outbox.
    Dev(DevArgs),
    /// Apply the database migrations that are not applied yet (PostgreSQL), then exit.
    Migrate(MigrateArgs),
    /// Delete delivery records past their retention (PostgreSQL), oldest first, in batches.
    ///
    /// Deletes the deliveries created more than --keep-days ago, with their attempts, SES
    /// feedback and links, and the unmatched feedback and unkeyed rejections as old. Keeps
    /// suppressions, tenant pauses, tokens and the audit log. Safe beside running workers; on
    /// SIGTERM or Ctrl-C it stops after the current batch, and the next run goes on from there.
    /// See docs/operations.md, "Data retention".
    Prune(crate::prune_cmd::PruneArgs),
    /// Consume product events from SQS and send them (the production path).
    ///
    /// Reads the configuration file, then TAYORI_* environment overrides (TAYORI_QUEUE__URL sets
    /// queue.url); see docs/configuration.md. Stops gracefully on SIGTERM or Ctrl-C.
    Worker(WorkerArgs),
    /// Work with dead-letter queues.
    #[command(subcommand)]
    Dlq(DlqCommand),
    /// Inspect the configuration.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Tools for template authors: check every template, render one.
    #[command(subcommand)]
    Templates(crate::templates_cmd::TemplatesCommand),
    /// Operators: bearer tokens, and the admin API and console server.
    #[command(subcommand)]
    Admin(crate::admin::AdminCommand),
    /// The public one-click unsubscribe endpoint, in a process of its own.
    #[command(subcommand)]
    Unsubscribe(crate::unsubscribe_cmd::UnsubscribeCommand),
}

/// Options of `tayori worker`.
#[derive(Args)]
pub struct WorkerArgs {
    /// The configuration file (TOML).
    #[arg(long, short, env = "TAYORI_CONFIG")]
    pub config: Option<PathBuf>,
}

/// `tayori dlq ...`
#[derive(Subcommand)]
pub enum DlqCommand {
    /// Move messages from a dead-letter queue back to the events queue, once their cause is
    /// fixed. Each batch is sent before it is deleted: a failure can leave a copy in both queues,
    /// which idempotency makes harmless, but never loses one.
    Redrive(RedriveArgs),
}

/// Options of `tayori dlq redrive`.
#[derive(Args)]
pub struct RedriveArgs {
    /// The dead-letter queue's URL (default: the one the --to queue's redrive policy names).
    #[arg(long)]
    pub from: Option<String>,
    /// The queue to move the messages back to: the events queue (or the SES feedback queue).
    #[arg(long)]
    pub to: String,
    /// Move at most this many messages (default: all).
    #[arg(long)]
    pub max: Option<u64>,
}

/// `tayori config ...`
#[derive(Subcommand)]
pub enum ConfigCommand {
    /// Load and validate the worker's configuration (file + environment) and print it, with
    /// secrets redacted. Exits non-zero, naming the setting, when something is wrong.
    Check(WorkerArgs),
}

/// Options of `tayori dev`.
#[derive(Args)]
pub struct DevArgs {
    /// Address to listen on. Keep it on loopback: the intake has no authentication.
    #[arg(long, default_value = "127.0.0.1:8080", env = "TAYORI_DEV_LISTEN")]
    pub listen: SocketAddr,
    /// Where the SQLite database and the outbox live (created if missing).
    #[arg(long, default_value = ".tayori", env = "TAYORI_DEV_DATA_DIR")]
    pub data_dir: PathBuf,
    /// The templates directory: one folder per tenant.
    #[arg(long, default_value = "templates", env = "TAYORI_TEMPLATES_DIR")]
    pub templates: PathBuf,
    /// Use this PostgreSQL database instead of SQLite (migrations are applied on start).
    #[arg(long, env = "TAYORI_DATABASE_URL")]
    pub database_url: Option<String>,
    /// Events handled at once.
    #[arg(long, default_value_t = 4)]
    pub concurrency: usize,
}

/// Options of `tayori migrate`.
#[derive(Args)]
pub struct MigrateArgs {
    /// The PostgreSQL database, e.g. postgres://tayori@db.internal:5432/tayori.
    #[arg(long, env = "TAYORI_DATABASE_URL")]
    pub database_url: String,
}
