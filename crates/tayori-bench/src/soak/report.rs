//! The soak's verdict and its markdown report (a table of every sample and mermaid charts).
//!
//! How each target is computed, with `warm-up(L) = min(2 min, L / 6)` and
//! `window(L) = min(5 min, (L − warm-up) / 3)` for a span of length `L`, and a sample counted in
//! a span when its whole 10 s window lies inside it:
//!
//! - **RSS growth ≤ 10 %**: the mean RSS of the span's last window against the mean of its first
//!   window after the warm-up, over the whole publishing time (for the issue's run: minutes
//!   2–7 against 35–40) and over the last phase alone (minutes 12–17 against 35–40, all at the
//!   same rate); the larger growth decides.
//! - **File descriptors flat**: the floor does not rise: the fewest descriptors in the last
//!   window at most [`FD_SLACK`] above the fewest in the first window after the warm-up, over
//!   the whole publishing time. Connections come and go with the load and the faults: a
//!   backlog after a fault is worked off 100 messages at once, on up to 100 SES connections,
//!   which the steady load then keeps in use (the pool closes one only when unused), so the
//!   count steps up after a backlog (bounded by `max_in_flight`) and back down when sending
//!   stops for a while (a 500s or resets fault); a leak raises the floor. The halves' peaks
//!   and the windows' means are reported too.
//! - **p99 drift ≤ 20 %**, per phase (the rates differ): the median of the 10 s p99s in the
//!   phase's last window against the median in its first window after the warm-up, over the
//!   samples with no fault in their 10 s (a fault's backlog makes a p99 of seconds: its effect
//!   is in the table and the chart, and in "0 lost" and "0 sent twice").
//! - **Lost 0**: published events without a `SendEmail` once the drain is over.
//! - **Sent twice 0**: events with more than one `SendEmail`.

use std::fmt::Write as _;
use std::time::Duration;

use super::faults::{self, Window};
use super::{Ending, Sample, Settings};

/// How many descriptors the last window's fewest may exceed the first window's by.
const FD_SLACK: f64 = 5.0;

/// A span's warm-up and comparison window.
fn warm_up_and_window(length: Duration) -> (Duration, Duration) {
    let warm_up = Duration::from_secs(120).min(length / 6);
    let window = Duration::from_secs(300).min((length - warm_up) / 3);
    (warm_up, window)
}

/// Samples whose window lies within `from..=to`.
fn within(
    samples: &[Sample],
    every: Duration,
    from: Duration,
    to: Duration,
) -> impl Iterator<Item = &Sample> {
    // A sample's `at` runs a little late (the sleep's wake-up): allow half a window.
    let slack = every / 2;
    samples.iter().filter(move |s| s.at.saturating_sub(every) + slack >= from && s.at <= to + slack)
}

fn mean(values: impl Iterator<Item = f64>) -> Option<f64> {
    let values: Vec<f64> = values.collect();
    (!values.is_empty()).then(|| values.iter().sum::<f64>() / values.len() as f64)
}

fn median(mut values: Vec<f64>) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    values.sort_by(f64::total_cmp);
    Some(values[values.len() / 2])
}

fn clock(t: Duration) -> String {
    let s = t.as_secs();
    format!("{}:{:02}", s / 60, s % 60)
}

fn span(from: Duration, to: Duration) -> String {
    format!("{}–{}", clock(from), clock(to))
}

/// One comparison: a first and a last window's value.
struct Compared {
    label: String,
    first: (Duration, Duration, Option<f64>),
    last: (Duration, Duration, Option<f64>),
}

impl Compared {
    fn change(&self) -> Option<f64> {
        Some(self.last.2? / self.first.2? - 1.0)
    }

    fn line(&self, unit: &str) -> String {
        let value = |v: Option<f64>| v.map_or("?".to_owned(), |v| format!("{v:.1}{unit}"));
        format!(
            "{}: {} ({}) → {} ({}), {}",
            self.label,
            value(self.first.2),
            span(self.first.0, self.first.1),
            value(self.last.2),
            span(self.last.0, self.last.1),
            self.change().map_or("?".to_owned(), |c| format!("{:+.1} %", c * 100.0))
        )
    }
}

fn compare(
    label: String,
    samples: &[Sample],
    every: Duration,
    (start, end): (Duration, Duration),
    value: impl Fn(&[&Sample]) -> Option<f64>,
) -> Compared {
    let (warm_up, window) = warm_up_and_window(end - start);
    let first = (start + warm_up, start + warm_up + window);
    let last = (end - window, end);
    let pick = |(from, to): (Duration, Duration)| {
        let chosen: Vec<&Sample> = within(samples, every, from, to).collect();
        (from, to, value(&chosen))
    };
    Compared { label, first: pick(first), last: pick(last) }
}

/// The phases' spans since the start.
fn phase_spans(settings: &Settings) -> Vec<(u32, Duration, Duration)> {
    let mut at = Duration::ZERO;
    settings
        .phases
        .iter()
        .map(|(rate, length)| {
            let span = (*rate, at, at + *length);
            at += *length;
            span
        })
        .collect()
}

fn verdict(ok: bool) -> &'static str {
    if ok { "meets" } else { "**misses**" }
}

/// The report.
pub fn markdown(
    settings: &Settings,
    samples: &[Sample],
    windows: &[Window],
    ending: &Ending,
    startup_rss: Option<f64>,
) -> String {
    let every = settings.sample_every;
    let total = settings.publishing();
    let phases = phase_spans(settings);
    let description: Vec<String> = phases
        .iter()
        .map(|(rate, from, to)| format!("{} min at {rate} events/s", fmt_minutes(*to - *from)))
        .collect();
    let mut out = String::new();
    let _ = writeln!(
        out,
        "\n### Soak: {}, a fault every {} s\n",
        description.join(", then "),
        settings.fault_every.as_secs()
    );

    // RSS.
    let rss = |chosen: &[&Sample]| mean(chosen.iter().filter_map(|s| s.rss));
    let mut rss_checks =
        vec![compare("whole run".into(), samples, every, (Duration::ZERO, total), rss)];
    if phases.len() > 1
        && let Some((rate, from, to)) = phases.last()
    {
        rss_checks.push(compare(
            format!("last phase ({rate}/s)"),
            samples,
            every,
            (*from, *to),
            rss,
        ));
    }
    let rss_growth = rss_checks.iter().filter_map(Compared::change).fold(f64::MIN, f64::max);
    let rss_ok = rss_checks.iter().all(|c| c.change().is_some()) && rss_growth <= 0.10;

    // File descriptors.
    let fds = |chosen: &[&Sample]| mean(chosen.iter().filter_map(|s| s.fds.map(|f| f as f64)));
    let fd_mean = compare("mean".into(), samples, every, (Duration::ZERO, total), fds);
    let fd_floor = |chosen: &[&Sample]| chosen.iter().filter_map(|s| s.fds).min().map(|f| f as f64);
    let fd_check = compare("fewest".into(), samples, every, (Duration::ZERO, total), fd_floor);
    let fd_peak = |chosen: &[&Sample]| chosen.iter().filter_map(|s| s.fds).max().map(|f| f as f64);
    let fd_peaks = compare("most".into(), samples, every, (Duration::ZERO, total), fd_peak);
    let (warm_up, _) = warm_up_and_window(total);
    let after_warm_up: Vec<usize> =
        within(samples, every, warm_up, total).filter_map(|s| s.fds).collect();
    let (fd_min, fd_max) = (
        after_warm_up.iter().min().copied().unwrap_or_default(),
        after_warm_up.iter().max().copied().unwrap_or_default(),
    );
    let half = warm_up + (total - warm_up) / 2;
    let most =
        |from: Duration, to: Duration| within(samples, every, from, to).filter_map(|s| s.fds).max();
    let halves = (most(warm_up, half), most(half, total));
    let fd_ok = match (fd_check.first.2, fd_check.last.2) {
        (Some(first), Some(last)) => last <= first + FD_SLACK,
        _ => false,
    };

    // p99 per phase.
    let p99 = |chosen: &[&Sample]| {
        let quiet = chosen.iter().filter(|s| s.faults.is_empty());
        median(quiet.filter_map(|s| s.window.map(|w| w.p99.as_secs_f64() * 1000.0)).collect())
    };
    let p99_checks: Vec<Compared> = phases
        .iter()
        .enumerate()
        .map(|(i, (rate, from, to))| {
            compare(format!("phase {} ({rate}/s)", i + 1), samples, every, (*from, *to), p99)
        })
        .collect();
    let p99_ok = p99_checks.iter().all(|c| c.change().is_some_and(|c| c <= 0.20));

    let _ = writeln!(out, "| target | measured | verdict |\n| --- | --- | --- |");
    let lines: Vec<String> = rss_checks.iter().map(|c| c.line(" MiB")).collect();
    let _ = writeln!(out, "| RSS growth ≤ 10 % | {} | {} |", lines.join("; "), verdict(rss_ok));
    let _ = writeln!(
        out,
        "| file descriptors flat (fewest ≤ +{FD_SLACK:.0}) | {}; most {} ({}) then {} ({}); {}; \
         {}; {fd_min}–{fd_max} after the warm-up | {} |",
        fd_check.line(""),
        halves.0.map_or("?".to_owned(), |n| n.to_string()),
        span(warm_up, half),
        halves.1.map_or("?".to_owned(), |n| n.to_string()),
        span(half, total),
        fd_mean.line(""),
        fd_peaks.line(""),
        verdict(fd_ok)
    );
    let lines: Vec<String> = p99_checks.iter().map(|c| c.line(" ms")).collect();
    let _ = writeln!(
        out,
        "| p99 drift ≤ 20 % (median of the 10 s p99s without a fault) | {} | {} |",
        lines.join("; "),
        verdict(p99_ok)
    );
    let _ = writeln!(
        out,
        "| 0 lost | {} of {} published events never sent | {} |",
        ending.lost,
        ending.published,
        verdict(ending.lost == 0 && ending.published > 0)
    );
    let _ = writeln!(
        out,
        "| 0 sent twice | {} events sent more than once ({} extra `SendEmail` calls) | {} |",
        ending.twice,
        ending.extra_sends,
        verdict(ending.twice == 0)
    );
    let all = rss_ok && fd_ok && p99_ok && ending.lost == 0 && ending.twice == 0;
    let _ = writeln!(
        out,
        "\nVerdict: {}.\n",
        if all { "every target met" } else { "**a target missed**" }
    );

    let _ = writeln!(
        out,
        "- worker RSS once polling, before the first event: {}",
        fmt_mib(startup_rss)
    );
    let fault_list: Vec<String> = windows
        .iter()
        .map(|w| {
            let lasted = if w.to == Duration::MAX {
                "until the end".to_owned()
            } else {
                format!("{:.1} s", w.to.saturating_sub(w.from).as_secs_f64())
            };
            format!("{} at {} ({lasted})", w.kind.label(), clock(w.from))
        })
        .collect();
    let _ = writeln!(
        out,
        "- faults (SQS through the proxy; rotation {}): {}",
        faults::ROTATION.map(faults::Kind::label).join(", "),
        if fault_list.is_empty() { "none".to_owned() } else { fault_list.join("; ") }
    );
    let _ = writeln!(out, "- proxy: {}", ending.proxy);
    let outcomes: Vec<String> = ending.outcomes.iter().map(|(s, n)| format!("{n} {s}")).collect();
    let _ = writeln!(
        out,
        "- published {} ({} `SendMessageBatch` entries failed); store outcomes: {}; {} receives \
         handed out a message again; {} `SendEmail` calls without a published event; drain after \
         publishing stopped: {:.0} s, {} messages left on the queue",
        ending.published,
        ending.publish_errors,
        if outcomes.is_empty() { "none".to_owned() } else { outcomes.join(", ") },
        ending.redelivered,
        ending.strays,
        ending.drain.as_secs_f64(),
        ending.queue_left
    );
    let _ = writeln!(
        out,
        "- worker: {}; its log ({}, {:.0} MiB) has {} WARN and {} ERROR lines",
        ending.stopped,
        ending.log.display(),
        ending.log_mib,
        ending.log_warnings,
        ending.log_errors
    );
    let _ = writeln!(
        out,
        "- windows: warm-up min(2 min, span / 6), compared windows min(5 min, (span − warm-up) / 3); \
         latency is publish (before `SendMessageBatch`) → `SendEmail` accepted by the stand-in, \
         first send of each event, by the 10 s window of its send\n"
    );

    charts(&mut out, samples);
    table(&mut out, samples);
    out
}

fn fmt_minutes(d: Duration) -> String {
    let minutes = d.as_secs_f64() / 60.0;
    if minutes.fract() == 0.0 { format!("{minutes:.0}") } else { format!("{minutes:.1}") }
}

fn fmt_mib(v: Option<f64>) -> String {
    v.map_or("?".to_owned(), |v| format!("{v:.1} MiB"))
}

/// Three mermaid line charts (mermaid's xychart draws no legend, so one series each).
fn charts(out: &mut String, samples: &[Sample]) {
    let Some(last) = samples.last() else { return };
    let minutes = (last.at.as_secs_f64() / 60.0).ceil().max(1.0);
    let mut chart = |title: &str, unit: &str, values: Vec<f64>, top: f64| {
        let points: Vec<String> = values.iter().map(|v| format!("{:.1}", v.min(top))).collect();
        let _ = writeln!(
            out,
            "```mermaid\nxychart-beta\n    title \"{title}\"\n    x-axis \"minutes\" 0 --> \
             {minutes:.0}\n    y-axis \"{unit}\" 0 --> {top:.0}\n    line [{}]\n```\n",
            points.join(", ")
        );
    };
    let rss: Vec<f64> = samples.iter().map(|s| s.rss.unwrap_or(0.0)).collect();
    let top = rss.iter().copied().fold(0.0, f64::max) * 1.2;
    chart("Worker RSS (MiB), every 10 s", "MiB", rss, top.ceil().max(1.0));
    let fds: Vec<f64> = samples.iter().map(|s| s.fds.unwrap_or(0) as f64).collect();
    let top = fds.iter().copied().fold(0.0, f64::max) * 1.2;
    chart("Worker open file descriptors, every 10 s", "fds", fds, top.ceil().max(1.0));
    let p99: Vec<f64> =
        samples.iter().map(|s| s.window.map_or(0.0, |w| w.p99.as_secs_f64() * 1000.0)).collect();
    // Faults make spikes hundreds of times the usual p99: clip them so the drift stays visible.
    let top = (median(p99.iter().copied().filter(|v| *v > 0.0).collect()).unwrap_or(1.0) * 4.0)
        .ceil()
        .max(1.0);
    chart(&format!("p99 publish → SendEmail (ms) per 10 s, clipped at {top:.0}"), "ms", p99, top);
}

fn table(out: &mut String, samples: &[Sample]) {
    let _ = writeln!(
        out,
        "<details><summary>Every sample ({} rows)</summary>\n\n\
         | t | offered/s | published | sent | sent in 10 s | p50 ms | p99 ms | RSS MiB | fds | \
         CPU % | queue | fault |\n\
         | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
        samples.len()
    );
    for s in samples {
        let (n, p50, p99) = s
            .window
            .map_or((0, "–".to_owned(), "–".to_owned()), |w| (w.count, ms(w.p50), ms(w.p99)));
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {n} | {p50} | {p99} | {} | {} | {} | {} | {} |",
            clock(s.at),
            s.phase.map_or("drain".to_owned(), |(_, rate)| rate.to_string()),
            s.published,
            s.sent,
            s.rss.map_or("?".to_owned(), |r| format!("{r:.1}")),
            s.fds.map_or("?".to_owned(), |f| f.to_string()),
            s.cpu.map_or("?".to_owned(), |c| format!("{:.0}", c * 100.0)),
            s.queue,
            fault_label(s),
        );
    }
    let _ = writeln!(out, "\n</details>");
}

fn ms(d: Duration) -> String {
    format!("{:.1}", d.as_secs_f64() * 1000.0)
}

fn fault_label(sample: &Sample) -> String {
    let labels: Vec<&str> = sample.faults.iter().map(|k| k.label()).collect();
    labels.join(", ")
}

/// One line per sample while the soak runs (to stderr).
pub fn progress_line(s: &Sample) -> String {
    let (p50, p99) =
        s.window.map_or(("–".to_owned(), "–".to_owned()), |w| (ms(w.p50), ms(w.p99)));
    format!(
        "{:>7.0} {:>5} {:>10} {:>9} {:>7} {:>7} {:>8} {:>4} {:>6}  {}",
        s.at.as_secs_f64(),
        s.phase.map_or("drain".to_owned(), |(_, rate)| rate.to_string()),
        s.published,
        s.sent,
        p50,
        p99,
        s.rss.map_or("?".to_owned(), |r| format!("{r:.1}")),
        s.fds.map_or("?".to_owned(), |f| f.to_string()),
        s.queue,
        fault_label(s)
    )
}
