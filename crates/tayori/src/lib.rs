//! The `tayori` binary's library half: command-line interface, configuration, telemetry, and
//! the wiring of adapters to use cases.
//!
//! It is the only crate that names concrete adapters, reads the environment, installs the
//! tracing subscriber or uses `anyhow`. It holds no business rules: everything it starts is a use
//! case from `tayori-app` behind ports implemented by the adapter crates. The library half
//! exists so the end-to-end tests can start the same app the binary starts. With the
//! `failpoints` feature (its own tests only) `tayori worker` can be made to abort at a named
//! boundary of the event path (`src/failpoints.rs`).

pub mod admin;
pub mod cli;
pub mod clock;
pub mod config;
pub mod dev;
#[cfg(feature = "failpoints")]
pub mod failpoints;
pub mod http_health;
pub mod metrics;
pub mod prune_cmd;
pub mod signals;
pub mod telemetry;
pub mod templates_cmd;
pub mod unsubscribe_cmd;
pub mod worker;
