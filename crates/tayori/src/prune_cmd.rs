//! `tayori prune`: wires the prune use case to PostgreSQL, the stop signals and a progress line.

use std::num::NonZeroU32;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Args;
use tayori_app::prune::{PruneProgress, PruneRecords, PruneReport, PruneRequest, PrunedKind};
use tayori_domain::RetentionDays;
use tayori_postgres::{PostgresConfig, PostgresRetention, PostgresStore};

use crate::clock::SystemClock;

/// Options of `tayori prune`.
#[derive(Args)]
pub struct PruneArgs {
    /// The PostgreSQL database, e.g. postgres://tayori@db.internal:5432/tayori.
    #[arg(long, env = "TAYORI_DATABASE_URL")]
    pub database_url: String,
    /// Keep records this many days. At least 15: SQS keeps a message up to 14 days, and a
    /// delivery's record must outlive every copy of its event (a redriven dead letter is a new
    /// copy), or that copy is mailed again.
    #[arg(long, env = "TAYORI_RETENTION_DAYS", value_parser = parse_retention)]
    pub keep_days: RetentionDays,
    /// Also delete operators' audit log entries older than this many days (by default the
    /// audit log is kept whole). At least `--keep-days`: the record of an action should outlive
    /// the records it acted on.
    #[arg(long, env = "TAYORI_AUDIT_RETENTION_DAYS", value_parser = parse_retention)]
    pub audit_keep_days: Option<RetentionDays>,
    /// Records deleted per transaction: smaller batches hold locks and write WAL in smaller
    /// bursts beside the workers.
    #[arg(long, default_value = "1000", value_parser = parse_batch_size)]
    pub batch_size: NonZeroU32,
    /// Records deleted per second at most (every kind together), to leave the database's CPU
    /// and disk to the workers when pruning beside daytime traffic. By default as fast as the
    /// database goes (about 20,000 deliveries a second on 2 cores, docs/benchmarks.md).
    #[arg(long, env = "TAYORI_PRUNE_MAX_RATE", value_parser = parse_max_rate)]
    pub max_rate: Option<NonZeroU32>,
    /// Count what would be deleted, delete nothing.
    #[arg(long)]
    pub dry_run: bool,
}

fn parse_retention(raw: &str) -> Result<RetentionDays, String> {
    let days: u32 = raw.parse().map_err(|_| format!("expected a number of days, got {raw:?}"))?;
    RetentionDays::new(days).map_err(|error| error.to_string())
}

fn parse_batch_size(raw: &str) -> Result<NonZeroU32, String> {
    match raw.parse::<u32>() {
        Ok(size @ 1..=100_000) => NonZeroU32::new(size).ok_or_else(|| "must be at least 1".into()),
        _ => Err(format!("expected a number from 1 to 100000, got {raw:?}")),
    }
}

fn parse_max_rate(raw: &str) -> Result<NonZeroU32, String> {
    match raw.parse::<u32>() {
        Ok(rate) => NonZeroU32::new(rate).ok_or_else(|| "must be at least 1 a second".into()),
        _ => Err(format!("expected records per second (a whole number), got {raw:?}")),
    }
}

/// How often a progress line is printed while deleting.
const PROGRESS_EVERY: Duration = Duration::from_secs(5);

/// Runs the prune and prints what it did. A stop signal ends it after the current batch, as an
/// error: the job did not finish, and the next run goes on where it stopped.
pub async fn run(args: PruneArgs) -> anyhow::Result<()> {
    if let Some(audit) = args.audit_keep_days
        && audit.days() < args.keep_days.days()
    {
        anyhow::bail!(
            "--audit-keep-days ({}) must be at least --keep-days ({}): the record of an action \
             should outlive the records it acted on",
            audit.days(),
            args.keep_days.days()
        );
    }
    let store = PostgresStore::connect(&PostgresConfig::new(&args.database_url))
        .await
        .context("cannot connect to the database given by --database-url")?;
    let pruner = PruneRecords::new(
        Arc::new(PostgresRetention::new(store.pool().clone())),
        Arc::new(SystemClock),
    );
    let request = PruneRequest {
        keep: args.keep_days,
        batch_size: args.batch_size,
        dry_run: args.dry_run,
        max_rate: args.max_rate,
        audit_keep: args.audit_keep_days,
    };

    let stop = Arc::new(AtomicBool::new(false));
    let signals = tokio::spawn({
        let stop = stop.clone();
        async move {
            crate::signals::wait_for_stop().await;
            eprintln!("stopping after the current batch");
            stop.store(true, Ordering::Relaxed);
        }
    });
    // One line per kind when it is done, and one every few seconds before that; the rate is the
    // kind's own, from the end of the kind before it.
    let mut current: Option<(PrunedKind, Instant)> = None;
    let mut last_batch_end = Instant::now();
    let mut last_line = last_batch_end;
    let mut printed_done = false;
    let mut progress = |p: PruneProgress| {
        let kind_started = match current {
            Some((kind, started)) if kind == p.kind => started,
            // The kind's first batch began when the one before it ended.
            _ => {
                current = Some((p.kind, last_batch_end));
                printed_done = false;
                last_batch_end
            }
        };
        last_batch_end = Instant::now();
        let done = p.deleted >= p.expected;
        if p.expected == 0 && p.deleted == 0 || done && printed_done {
            return;
        }
        if done || last_line.elapsed() >= PROGRESS_EVERY {
            last_line = Instant::now();
            printed_done = done;
            eprintln!("{}", progress_line(p, kind_started.elapsed()));
        }
    };
    let result = pruner.run(request, &mut progress, &|| stop.load(Ordering::Relaxed)).await;
    signals.abort();
    store.close().await;
    let report = result?;
    println!("{}", summary(&report, args.keep_days, args.dry_run));
    if report.stopped_early {
        anyhow::bail!("stopped before the end; run it again to go on where it stopped");
    }
    Ok(())
}

fn progress_line(p: PruneProgress, elapsed: Duration) -> String {
    let percent = (p.deleted * 100).checked_div(p.expected).map_or(100, |percent| percent.min(100));
    let per_second = p.deleted as f64 / elapsed.as_secs_f64().max(0.001);
    format!(
        "{}: {} of {} deleted ({percent} %), {per_second:.0}/s",
        p.kind.label(),
        p.deleted,
        p.expected
    )
}

fn summary(report: &PruneReport, keep: RetentionDays, dry_run: bool) -> String {
    let cutoff = report.cutoff.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let (found, deleted) = (report.found, report.deleted);
    let mut lines = vec![format!("records before {cutoff} (kept {} days):", keep.days())];
    if dry_run {
        lines.push(format!(
            "  would delete {} deliveries (with their attempts, feedback and links), {} unmatched \
             feedback messages, {} unkeyed rejections",
            found.deliveries, found.unmatched_feedback, found.unkeyed_rejections
        ));
    } else {
        lines.push(format!(
            "  deleted {} deliveries (with their attempts, feedback and links), {} unmatched \
             feedback messages, {} unkeyed rejections",
            deleted.deliveries, deleted.unmatched_feedback, deleted.unkeyed_rejections
        ));
    }
    match (report.audit_cutoff, dry_run) {
        (None, _) => lines.push("  the audit log is kept whole (no --audit-keep-days)".into()),
        (Some(at), true) => lines.push(format!(
            "  would delete {} audit entries recorded before {}",
            found.audit_entries,
            at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        )),
        (Some(at), false) => lines.push(format!(
            "  deleted {} audit entries recorded before {}",
            deleted.audit_entries,
            at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        )),
    }
    if found.processing_kept > 0 {
        lines.push(format!(
            "  kept {} deliveries a worker has taken up since the cutoff (a late copy of their \
             event); a later run deletes them",
            found.processing_kept
        ));
    }
    lines.join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_retention_and_batch_size_are_checked_with_a_message_that_says_why() {
        assert_eq!(parse_retention("90").map(RetentionDays::days), Ok(90));
        let short = parse_retention("7").unwrap_err();
        assert!(short.contains("at least 15 days, got 7"), "{short}");
        assert!(parse_retention("90d").unwrap_err().contains("a number of days"));
        assert_eq!(parse_batch_size("500").map(NonZeroU32::get), Ok(500));
        assert!(parse_batch_size("0").unwrap_err().contains("from 1 to 100000"));
        assert!(parse_batch_size("1000000").is_err());
    }
}
