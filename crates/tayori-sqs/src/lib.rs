//! tayori's SQS consumer: the driving adapter of `tayori worker`.
//!
//! It owns everything between an SQS queue and the [`EventHandler`](tayori_app::EventHandler)
//! use case: long polling in batches, bounding the work in flight by count and by bytes,
//! extending the visibility of messages still being worked on, deleting a message (in batches)
//! only after its outcome is recorded, setting a backoff with jitter on the visibility of
//! messages the use case could not decide yet, abandoning a message whose handling outlasts its
//! deadline, holding off while the use case's store is down (and reporting the queue's and
//! the store's health, [`ConsumerHealth`]), sharing its capacity between tenants (a tenant
//! over its share waits off it, or is handed back to the queue), releasing unstarted messages on
//! shutdown, and redriving a dead-letter queue, and reading it for operators
//! ([`SqsDeadLetters`]). It must not parse events, render, send or touch the store itself: those
//! are the use case's and the other adapters' (it asks the use case which tenant a message is
//! for). It never reads the environment;
//! the binary hands it an SQS client and a [`ConsumerConfig`]. With the `failpoints` feature
//! (crash tests only) the delete of handled messages has a failpoint.

mod batched;
mod config;
mod consumer;
mod dead_letters;
mod health;
mod redrive;
mod slots;

pub use config::ConsumerConfig;
pub use consumer::{ConsumerReport, SqsConsumer};
pub use dead_letters::SqsDeadLetters;
pub use health::ConsumerHealth;
pub use redrive::{RedriveError, RedriveReport, redrive};
