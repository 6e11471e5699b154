//! Printing what the phases measured, and where the time of one event goes.

use std::time::{Duration, Instant};

use crate::instrument::Step;
use crate::runs::{BareRun, StoreOnlyRun, WorkerRun};
use crate::stats::{Summary, ms};
use tayori_postgres::WriteBatchStats;

/// Prints a worker phase.
pub fn worker(title: &str, run: &WorkerRun) {
    println!("\n== {title}");
    match run.feed_elapsed {
        Some(feed) => println!(
            "events: {} published over {:.2} s ({:.0}/s offered); all decided {:.2} s after the \
             worker started",
            run.events,
            feed.as_secs_f64(),
            run.events as f64 / feed.as_secs_f64().max(1e-9),
            run.elapsed.as_secs_f64()
        ),
        None => println!(
            "events: {} in {:.2} s = {:.0} events/s (consumer start → last delete)",
            run.events,
            run.elapsed.as_secs_f64(),
            run.rate()
        ),
    }
    if let Some(latency) = &run.receive_to_send {
        println!("receive → send: {latency}");
    }
    if let Some(latency) = &run.enqueue_to_send {
        println!("enqueue → send: {latency}");
    }
    println!(
        "SES: {} SendEmail calls, {} deliveries sent more than once, {} deleted messages without \
         a send; {} redelivered messages",
        run.ses_calls, run.ses_duplicates, run.missing_sends, run.redelivered
    );
    let report = &run.report;
    println!(
        "consumer: {} received, {} deleted, {} backed off, {} released unstarted, {} abandoned",
        report.received,
        report.deleted,
        report.backed_off,
        report.released_unstarted,
        report.abandoned
    );
    println!("{}", run.check.line());
    println!("{}", batches_line(&run.write_batches));
    println!("{}", run.cpu.line());
    println!("{} (per event)", run.cpu.per_item(run.events));
    match (run.rss_at_start, run.peak_rss) {
        (Some(start), Some(peak)) => println!(
            "memory (whole process, stand-in included): VmRSS {start:.1} MiB at the start, \
             VmHWM {peak:.1} MiB during the phase"
        ),
        (Some(start), None) => println!("memory: VmRSS {start:.1} MiB at the start"),
        _ => {}
    }
}

/// The group committer's line: how many writes shared a commit.
fn batches_line(stats: &WriteBatchStats) -> String {
    format!(
        "store writes: {} in {} transactions ({:.1} per commit), {} batches replayed write by write",
        stats.writes,
        stats.batches,
        stats.writes as f64 / stats.batches.max(1) as f64,
        stats.replayed
    )
}

/// Prints the bare-SDK phase.
pub fn bare(run: &BareRun, repeat: usize) {
    println!("\n== Limit: the bare SDK calls against the same stand-in (run {repeat})");
    println!(
        "{} messages in {:.2} s = {:.0} messages/s ({} loops of receive 10 → 10 × SendEmail → \
         DeleteMessageBatch; {} errors)",
        run.events,
        run.elapsed.as_secs_f64(),
        run.rate(),
        run.loops,
        run.errors
    );
    println!("{}", run.cpu.line());
    println!("{} (per message)", run.cpu.per_item(run.events));
}

/// Prints the store-only phase.
pub fn store_only(run: &StoreOnlyRun) {
    println!("\n== The store alone: claim with attempt started → attempt finished and outcome");
    println!(
        "{} events in {:.2} s = {:.0} events/s ({:.0} store calls/s; {} at once)",
        run.events,
        run.elapsed.as_secs_f64(),
        run.rate(),
        run.rate() * run.steps.len() as f64,
        run.concurrency
    );
    for (name, summary) in &run.steps {
        println!("  {name:<24} {summary}");
    }
    println!("{}", batches_line(&run.write_batches));
    println!("{}", run.cpu.line());
    println!("{} (per event)", run.cpu.per_item(run.events));
    println!(
        "WAL {:.1} MiB ({:.0} bytes per event)",
        run.wal_bytes as f64 / 1024.0 / 1024.0,
        run.wal_bytes as f64 / run.events.max(1) as f64
    );
}

/// One segment of an event's life in the breakdown.
struct Segment {
    name: &'static str,
    samples: Vec<Duration>,
}

/// Prints where an event's time goes, from the breakdown run's step timings joined with the
/// stand-in's receive, `SendEmail` and delete times.
pub fn breakdown(run: &WorkerRun) {
    let Some(timings) = &run.timings else { return };
    println!("\n-- Every call of each port (wall time, including waits for a pool connection)");
    for step in Step::ALL {
        let samples: Vec<Duration> = timings
            .values()
            .flatten()
            .filter(|(s, _, _)| *s == step)
            .map(|(_, start, end)| end.duration_since(*start))
            .collect();
        if let Some(summary) = Summary::of(samples) {
            println!("  {:<24} {summary}", step.name());
        }
    }

    let names = [
        "received → render",
        "render",
        "render → claim called",
        "claim_and_start_attempt",
        "claim → send called",
        "send: call → SES got it",
        "send: SES got it → answer",
        "send → result and outcome",
        "record_attempt_finished_and_outcome",
        "outcome → deleted",
    ];
    let mut segments: Vec<Segment> =
        names.iter().map(|name| Segment { name, samples: Vec::new() }).collect();
    let mut complete = 0usize;
    for trace in &run.traces {
        let Some(spans) = timings.get(&trace.delivery) else { continue };
        let first =
            |step: Step| spans.iter().find(|(s, _, _)| *s == step).map(|(_, a, b)| (*a, *b));
        let (Some(claim), Some(render), Some(send), Some(outcome), Some(ses)) = (
            first(Step::ClaimToSend),
            first(Step::Render),
            first(Step::Send),
            first(Step::AttemptFinishedAndOutcome),
            trace.ses_at,
        ) else {
            continue;
        };
        complete += 1;
        let points: [(Instant, Instant); 10] = [
            (trace.first_received, render.0),
            render,
            (render.1, claim.0),
            claim,
            (claim.1, send.0),
            (send.0, ses),
            (ses, send.1),
            (send.1, outcome.0),
            outcome,
            (outcome.1, trace.deleted_at),
        ];
        for (segment, (from, to)) in segments.iter_mut().zip(points) {
            segment.samples.push(to.saturating_duration_since(from));
        }
    }
    let summaries: Vec<(&str, Summary)> =
        segments.into_iter().filter_map(|s| Some((s.name, Summary::of(s.samples)?))).collect();
    let total: Duration = summaries.iter().map(|(_, s)| s.mean).sum();
    println!(
        "\n-- One event's life, received → deleted ({complete} events on the plain path; \
         mean total {})",
        ms(total)
    );
    println!("  {:<28} {:>10} {:>10} {:>10} {:>7}", "segment", "mean", "p50", "p99", "share");
    for (name, summary) in &summaries {
        println!(
            "  {name:<28} {:>10} {:>10} {:>10} {:>6.1}%",
            ms(summary.mean),
            ms(summary.p50),
            ms(summary.p99),
            summary.mean.as_secs_f64() / total.as_secs_f64().max(1e-12) * 100.0
        );
    }
    let store: Duration = summaries
        .iter()
        .filter(|(name, _)| {
            matches!(*name, "claim_and_start_attempt" | "record_attempt_finished_and_outcome")
        })
        .map(|(_, s)| s.mean)
        .sum();
    println!(
        "  the two store calls: {} of {} ({:.0}%); mean events in flight by Little's law: {:.0}",
        ms(store),
        ms(total),
        store.as_secs_f64() / total.as_secs_f64().max(1e-12) * 100.0,
        run.rate() * total.as_secs_f64()
    );
}

/// The hold-release run.
pub fn hold_release(run: &crate::hold_release::HoldRelease, settings: tayori_app::ReleaseSettings) {
    println!(
        "\n== Hold and release: {} events of paused tenants, then a resume (release rounds of {}, \
         {} at once)",
        run.events, settings.batch_size, settings.concurrency
    );
    let rate = |elapsed: std::time::Duration| run.events as f64 / elapsed.as_secs_f64().max(1e-9);
    println!(
        "hold: {} messages off the queue into {} held rows in {:.1} s ({:.0} events/s)",
        run.events,
        run.held,
        run.hold.as_secs_f64(),
        rate(run.hold)
    );
    println!(
        "release: every event decided {:.1} s after the resume ({:.0} events/s); rounds: {:?}",
        run.release.as_secs_f64(),
        rate(run.release),
        run.released
    );
    let outcomes: Vec<String> =
        run.outcomes.iter().map(|(status, count)| format!("{count} {status}")).collect();
    println!(
        "store: {}; held rows left {}; deliveries with more than one send attempt {}",
        outcomes.join(", "),
        run.held_left,
        run.sent_twice
    );
    println!("{} (release phase)", run.release_cpu.line());
    if let Some(peak) = run.peak_rss {
        println!("peak RSS during hold and release: {peak:.1} MiB");
    }
}
