//! Tenants' email templates, loaded from `templates/` and rendered with tera 1.x.
//!
//! This crate owns everything between a directory of template files and a rendered email: it
//! reads each tenant's `tenant.toml` into a [`TenantProfile`], its layouts and partials (falling
//! back to `templates/_shared/`) and its event types' subject, HTML and text files into one tera
//! instance per tenant, with the tenant's stylesheet inlined into the HTML once, at load. It
//! checks everything when it loads — every file compiles, every sample matches the event's
//! variable schema and renders in every locale — and reports every problem at once as
//! `file:line: message` ([`TemplateSet::check`], which `tayori templates check` prints). Then it
//! implements the [`TemplateRenderer`](tayori_app::ports::TemplateRenderer),
//! [`TenantDirectory`] and [`TemplatePreviews`](tayori_app::ports::TemplatePreviews) ports from
//! memory. [`ReloadableTemplates`] swaps in a new set when the files change (or when asked),
//! keeping the last good set when the new one has problems.
//!
//! It must not touch anything else: no network, no database, no sending, no reading of the
//! process environment (tera's `get_env` is disabled). It reads files only in
//! [`TemplateSet::load`] and [`TemplateSet::check`] (so when a [`ReloadableTemplates`] reloads);
//! rendering does no IO.
//!
//! # What a template sees
//! The event's `data.variables` at the top level, plus three reserved keys that win over a
//! variable of the same name:
//!
//! | key | fields |
//! | --- | --- |
//! | `to` | `email`, `name` (null when absent), `locale` (the recipient's, null when absent) |
//! | `event` | `id`, `source`, `type`, `time` (RFC 3339, null when absent), `tenant` |
//! | `tenant` | `id`, `from` (the sender's address), `from_name` (null when absent) |
//!
//! An undefined variable is an error naming the file, the line and the variable, never a blank.
//! The HTML body is autoescaped (it is always registered under a name ending in `.html`); the
//! subject and the text body are not. Besides tera's built-in filters there is `number_format`
//! (`50000` → `50,000`).
//!
//! # Locale resolution
//! The recipient's locale and its truncations (`ja-JP`, `ja`), then the tenant's
//! `fallback_locales` and the `default_locale` (each with its truncations), then the
//! locale-neutral files (`subject.txt`, `body.html`): the first that has both a subject and an
//! HTML body wins. The text body comes from the chosen locale or its truncations, else from the
//! locale-neutral `body.txt`; when there is none, it is generated from the rendered HTML.
//! `templates/README.md` says the same for template authors.

mod check;
mod config;
mod engine;
mod inline;
mod load;
mod locate;
mod mask;
mod preview;
mod reload;
mod render;
mod sample;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::sync::Arc;

use tayori_app::ports::{TenantDirectory, TenantProfile};
use tayori_domain::{EventType, Locale, TenantId};

pub use check::{CheckReport, CheckSummary};
pub use load::{LoadError, LoadProblem};
pub use reload::{ReloadableTemplates, TemplateWatcher};
pub use sample::SampleRender;

use crate::config::EventSettings;

/// Every tenant's profile and templates, loaded and checked by [`TemplateSet::load`].
///
/// It implements [`TemplateRenderer`](tayori_app::ports::TemplateRenderer),
/// [`TenantDirectory`] and [`TemplatePreviews`](tayori_app::ports::TemplatePreviews) without IO.
pub struct TemplateSet {
    tenants: BTreeMap<TenantId, TenantTemplates>,
}

/// One tenant: its profile, its compiled templates and where each event type's files are.
struct TenantTemplates {
    profile: Arc<TenantProfile>,
    /// Tried after the recipient's locale and before the default.
    fallback_locales: Vec<Locale>,
    /// The event types it sends emails for (`event_types` in `tenant.toml`).
    accepted: BTreeSet<EventType>,
    /// One tera instance per tenant, so that a template can never include or extend another
    /// tenant's.
    tera: tera::Tera,
    /// Every template registered in `tera`, by its tera name: where it comes from and its text
    /// as written (before CSS inlining), to find the line of a render error.
    sources: HashMap<String, SourceText>,
    events: BTreeMap<EventType, EventTemplates>,
}

/// A template as its author wrote it.
struct SourceText {
    /// The path relative to the templates directory, with `/`: what error messages name.
    path: String,
    text: String,
}

/// The files and settings of one event type.
struct EventTemplates {
    /// `acme-invest/account.deposit_completed`: the directory, relative to the templates one.
    dir: String,
    /// Locales that have both a subject and an HTML body (`None` is locale-neutral).
    variants: BTreeMap<LocaleKey, Variant>,
    /// Text bodies by locale.
    texts: BTreeMap<LocaleKey, TemplateFile>,
    /// `event.toml`.
    settings: EventSettings,
    /// `schema.json`, compiled.
    schema: Option<VariableSchema>,
    /// `samples/<name>.json`, by name.
    samples: BTreeMap<String, sample::Sample>,
}

/// An event type's JSON Schema for its `data.variables`.
struct VariableSchema {
    /// `acme-invest/account.deposit_completed/schema.json`.
    path: String,
    validator: jsonschema::Validator,
}

/// A locale of template files; `None` is the locale-neutral fallback.
type LocaleKey = Option<Locale>;

/// The subject and HTML body of one locale.
struct Variant {
    subject: TemplateFile,
    html: TemplateFile,
}

/// One template file as registered in tera.
#[derive(Debug, Clone)]
struct TemplateFile {
    /// The name registered in tera (HTML bodies always end in `.html`, so they are escaped).
    name: String,
    /// The path relative to the templates directory, with `/`: what error messages name.
    path: String,
}

impl TemplateSet {
    /// Every configured tenant, in the order of their ids.
    pub fn tenants(&self) -> impl Iterator<Item = &TenantProfile> {
        self.tenants.values().map(|tenant| tenant.profile.as_ref())
    }

    /// The event types the tenant has templates for, in order, whether it accepts them or not;
    /// none for an unknown tenant.
    pub fn event_types(&self, tenant: &TenantId) -> impl Iterator<Item = &EventType> {
        self.tenants.get(tenant).into_iter().flat_map(|tenant| tenant.events.keys())
    }

    /// Whether the tenant accepts events of this type (lists it in `event_types`).
    pub fn accepts(&self, tenant: &TenantId, event_type: &EventType) -> bool {
        self.tenants.get(tenant).is_some_and(|t| t.accepted.contains(event_type))
    }

    /// The names of the event type's samples, in order.
    pub fn samples(&self, tenant: &TenantId, event_type: &EventType) -> Vec<&str> {
        self.event(tenant, event_type)
            .map(|(_, event)| event.samples.keys().map(String::as_str).collect())
            .unwrap_or_default()
    }

    /// The locales the event type has templates for, in order (a locale-neutral template is
    /// listed under the tenant's default locale).
    pub fn locales(&self, tenant: &TenantId, event_type: &EventType) -> Vec<Locale> {
        let Some((templates, event)) = self.event(tenant, event_type) else {
            return Vec::new();
        };
        let mut locales: Vec<Locale> = Vec::new();
        for key in event.variants.keys() {
            let locale = key.clone().unwrap_or_else(|| templates.profile.default_locale.clone());
            if !locales.contains(&locale) {
                locales.push(locale);
            }
        }
        locales
    }

    fn event(
        &self,
        tenant: &TenantId,
        event_type: &EventType,
    ) -> Option<(&TenantTemplates, &EventTemplates)> {
        let templates = self.tenants.get(tenant)?;
        Some((templates, templates.events.get(event_type)?))
    }
}

impl TenantDirectory for TemplateSet {
    fn tenant(&self, id: &TenantId) -> Option<Arc<TenantProfile>> {
        self.tenants.get(id).map(|tenant| Arc::clone(&tenant.profile))
    }
}

impl fmt::Debug for TemplateSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut map = f.debug_map();
        for (id, tenant) in &self.tenants {
            map.entry(
                &id.as_str(),
                &tenant.events.keys().map(EventType::as_str).collect::<Vec<_>>(),
            );
        }
        map.finish()
    }
}

/// An error and its sources as one line: the messages joined with `: `, multi-line messages
/// (tera's parse errors) folded, repeated messages dropped.
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut messages: Vec<String> = Vec::new();
    let mut current = Some(error);
    while let Some(error) = current {
        let message = one_line(&error.to_string());
        if !message.is_empty() && messages.last() != Some(&message) {
            messages.push(message);
        }
        current = error.source();
    }
    messages.join(": ")
}

/// Folds a multi-line message into one line. tera's (pest's) parse errors look like
/// ` --> 3:12 | ... = expected ...`; they become `line 3, column 12: expected ...`.
fn one_line(message: &str) -> String {
    let lines: Vec<&str> = message.lines().map(str::trim).collect();
    let position = lines.iter().find_map(|line| line.strip_prefix("--> "));
    let expected = lines.iter().find_map(|line| line.strip_prefix("= "));
    if let (Some(position), Some(expected)) = (position, expected) {
        let (line, column) = position.split_once(':').unwrap_or((position, "?"));
        return format!("line {line}, column {column}: {expected}");
    }
    lines.into_iter().filter(|line| !line.is_empty()).collect::<Vec<_>>().join(" ")
}
