//! The Amazon SES v2 sender: an [`EmailSender`](tayori_app::ports::EmailSender) that hands each
//! email to SES with one `SendEmail` call carrying the raw MIME message built by `tayori-mime`
//! (the same bytes as every other sender), the tenant's configuration set and SES tenant, and
//! tags naming the tenant, the event type and the delivery.
//!
//! It owns three things: the SDK client's settings for sending (SDK retries off, explicit
//! connect and call timeouts), the mapping of every SES and transport error to the
//! [`SendError`](tayori_app::ports::SendError) variant that says whether the email may have gone
//! out, and the send-rate limits (the rate shared among tenants by weight, per-tenant caps, a
//! bounded wait, a rate that can change at run time), with the reading of the account's rate
//! (`GetAccount`) behind [`SendRateControl`](tayori_app::ports::SendRateControl). The settings, the mapping table and the reasoning behind it are in
//! `docs/configuration.md` ("SES sender").
//!
//! It must not touch queues, templates or the delivery store: retrying, recording attempts and
//! deciding what an unknown result means are the use case's.

mod config;
mod errors;
mod limiter;
mod sender;
mod tags;

pub use config::{InvalidSesConfig, SesConfig};
pub use sender::{SendRateSource, SesSender, TenantPacing, tenant_pacing};
pub use tags::{DELIVERY_ID_TAG, EVENT_TYPE_TAG, TENANT_TAG, tag_value};
