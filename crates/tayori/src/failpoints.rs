//! The crash tests' failpoints (compiled only with the `failpoints` feature): the event path
//! (`tayori-app`) and the SQS delete (`tayori-sqs`) carry `fail::fail_point!`s at each boundary,
//! and `TAYORI_FAILPOINT_KILL=<name>[@<n>]` makes the process abort at the `n`th pass (default
//! the first) through the named one, as a `kill -9` there would: no destructor, no flush.

use std::sync::atomic::{AtomicU32, Ordering};

/// The failpoints, in the order an event passes them (`docs/idempotency.md`, "Crash points").
pub const NAMES: [&str; 6] = [
    "event.after_receive",
    "event.mid_render",
    "event.after_claim",
    "event.after_accepted",
    "event.after_outcome",
    "sqs.during_delete",
];

/// Arms the failpoint `TAYORI_FAILPOINT_KILL` names, if any.
pub fn arm_from_env() -> anyhow::Result<()> {
    let Ok(spec) = std::env::var("TAYORI_FAILPOINT_KILL") else { return Ok(()) };
    let (name, nth) = match spec.split_once('@') {
        Some((name, nth)) => (name.to_owned(), nth.parse::<u32>()?),
        None => (spec.clone(), 1),
    };
    anyhow::ensure!(NAMES.contains(&name.as_str()), "no failpoint {name:?}; known: {NAMES:?}");
    let passes = AtomicU32::new(0);
    let announced = name.clone();
    fail::cfg_callback(name, move || {
        if passes.fetch_add(1, Ordering::SeqCst) + 1 >= nth {
            eprintln!("failpoint {announced}: aborting");
            std::process::abort();
        }
    })
    .map_err(anyhow::Error::msg)
}
