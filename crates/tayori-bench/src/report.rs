//! Printing what the phases measured, and where the time of one event goes.

use std::time::{Duration, Instant};

use crate::instrument::Step;
use crate::isolation::{Accounting, Scenario, ScenarioRun, Settings, TENANT_A, TENANT_B};
use crate::runs::{BareRun, StoreOnlyRun, WorkerRun};
use crate::stats::{self, Summary, ms};
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

/// One isolation scenario (issue 21).
pub fn isolation_scenario(run: &ScenarioRun, settings: Settings) {
    let mode = if settings.fair { "fair queues" } else { "plain delivery" };
    println!("\n== Isolation, {} ({mode})", run.scenario.name());
    match &run.b_latency {
        Some(latency) => println!("{TENANT_B} SentTimestamp → SES accepted: {latency}"),
        None => println!("{TENANT_B}: no email accepted"),
    }
    if let (Some(queued), Some(worked)) = run.b_split {
        println!("  of which SentTimestamp → first receive (in the queue): {queued}");
        println!("  and first receive → SES accepted (in the worker): {worked}");
    }
    println!(
        "{TENANT_B} throughput: {} of {} offered accepted within its {:.1} s window ({:.2} %)",
        run.b_sent_in_window,
        run.b.published,
        run.window.as_secs_f64(),
        run.b_share() * 100.0
    );
    println!("{TENANT_B}: {}", run.b.line());
    if let Some(a) = &run.a {
        println!("{TENANT_A}: {}", a.line());
        match run.a_drained {
            Some(after) => println!(
                "{TENANT_A}: every event decided or held {:.1} s after B's window",
                after.as_secs_f64()
            ),
            None => println!(
                "{TENANT_A}: NOT every event decided within {:.0} s after B's window (unfinished, \
                 not lost: see 'still on the queue')",
                settings.drain.as_secs_f64()
            ),
        }
    }
    if let Some((rate, span)) = run.burst_rate {
        println!(
            "worker total while the burst drained: {rate:.0} emails/s ({:.1} s from the start to \
             A's last email)",
            span.as_secs_f64()
        );
    }
    println!("consumer: {:?}", run.report);
    println!(
        "stand-in: a group found noisy {} times; {} messages handed out ahead of a noisy group's",
        run.fairness.0, run.fairness.1
    );
    println!("cpu: {}", run.cpu.line());
}

/// The isolation run's table and the targets of issue 21.
pub fn isolation_table(runs: &[ScenarioRun], settings: Settings, throughput: Option<f64>) {
    let mode = if settings.fair { "on" } else { "off" };
    println!(
        "\n== Isolation summary (fair queues {mode}; {TENANT_B} at {}/s for {} s; burst {}; \
         {TENANT_A} at {}/s; slow {:.1} s)",
        settings.b_rate,
        settings.seconds,
        settings.burst,
        settings.a_rate,
        settings.slow.as_secs_f64()
    );
    println!(
        "| scenario | B p50 | B p99 | B max | B p99 in queue / in worker | B share | A published / \
         sent / decided / held / queued / lost / twice | worker total | others' CPU |"
    );
    println!("| --- | --- | --- | --- | --- | --- | --- | --- | --- |");
    for run in runs {
        let latency = |f: fn(&Summary) -> Duration| {
            run.b_latency.as_ref().map_or("–".to_owned(), |l| stats::ms(f(l)))
        };
        let a = run.a.as_ref().map_or("–".to_owned(), |a| {
            format!(
                "{} / {} / {} / {} / {} / {} / {}",
                a.published,
                a.sent,
                a.decided(),
                a.held,
                a.queued,
                a.lost,
                a.sent_twice as i64 + a.accepted_twice_in_store
            )
        });
        let total = run.burst_rate.map_or("–".to_owned(), |(rate, _)| match throughput {
            Some(plain) => format!("{rate:.0}/s ({:.0} % of {plain:.0})", rate / plain * 100.0),
            None => format!("{rate:.0}/s"),
        });
        let split = match run.b_split {
            (Some(queued), Some(worked)) => format!("{} / {}", ms(queued.p99), ms(worked.p99)),
            _ => "–".to_owned(),
        };
        let others = run.cpu.others().map_or("–".to_owned(), |c| format!("{c:.2} cores"));
        println!(
            "| {} | {} | {} | {} | {split} | {:.2} % | {a} | {total} | {others} |",
            run.scenario.name(),
            latency(|l| l.p50),
            latency(|l| l.p99),
            latency(|l| l.max),
            run.b_share() * 100.0
        );
    }

    println!("\nTargets (issue 21):");
    let verdict = |ok: bool| if ok { "met" } else { "MISSED" };
    let alone = runs.iter().find(|r| r.scenario == Scenario::Alone).and_then(|r| r.b_latency);
    for run in runs {
        let name = run.scenario.name();
        let p99 = run.b_latency.map(|l| l.p99);
        match (run.scenario, p99) {
            (Scenario::Burst, Some(p99)) => println!(
                "  {name}: B p99 {} ≤ 50 ms: {}",
                stats::ms(p99),
                verdict(p99 <= Duration::from_millis(50))
            ),
            (Scenario::Throttled | Scenario::Slow | Scenario::Paused, Some(p99)) => {
                if let Some(alone) = alone {
                    let bound =
                        (alone.p99 + alone.p99 / 10).max(alone.p99 + Duration::from_millis(5));
                    println!(
                        "  {name}: B p99 {} within {} (alone {} +10 % or +5 ms): {}",
                        stats::ms(p99),
                        stats::ms(bound),
                        stats::ms(alone.p99),
                        verdict(p99 <= bound)
                    );
                }
            }
            _ => {}
        }
        println!(
            "  {name}: B throughput {:.2} % of offered ≥ 99 %: {}",
            run.b_share() * 100.0,
            verdict(run.b_share() >= 0.99)
        );
        let clean = run.b.clean() && run.a.as_ref().is_none_or(Accounting::clean);
        println!("  {name}: none of A's or B's events lost or sent twice: {}", verdict(clean));
    }
}
