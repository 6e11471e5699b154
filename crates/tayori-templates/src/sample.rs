//! Sample data (`<event-type>/samples/<name>.json`): what `check` renders every template with,
//! and what previews and `tayori templates render` show.
//!
//! A sample is the `data` of an event: `{"to": {...}, "variables": {...}}`, optionally with the
//! event's `time`. `to` defaults to `{"email": "recipient@example.com"}`; the locale to render in
//! is set per render (every locale the event type has), so `to.locale` only says which one
//! `tayori templates render` picks when given no `--locale`.

use std::sync::Arc;

use serde_json::{Map, Value, json};
use tayori_app::ports::{PreviewError, RenderedEmail, TenantProfile};
use tayori_domain::{Event, EventType, Locale, TenantId, decode_message_body};

use crate::TemplateSet;
use crate::locate::line_of_pointer;

/// The `time` of sample events that give none, so that renders are the same every day.
pub(crate) const SAMPLE_TIME: &str = "2026-11-27T10:00:00Z";

/// The recipient of samples that name none.
const SAMPLE_RECIPIENT: &str = "recipient@example.com";

/// One sample, checked for shape at load.
pub(crate) struct Sample {
    /// `acme-invest/account.deposit_completed/samples/default.json`.
    pub(crate) path: String,
    /// The file's text, to find lines in.
    pub(crate) text: String,
    /// The `data` object.
    pub(crate) data: Value,
}

/// A sample's problem: its line in the file when known, and what is wrong.
pub(crate) type SampleError = (Option<usize>, String);

/// Parses a sample file and checks its shape.
pub(crate) fn parse_sample(text: &str) -> Result<Value, SampleError> {
    let data: Value =
        serde_json::from_str(text).map_err(|e| (Some(e.line()), format!("not valid JSON: {e}")))?;
    let Some(object) = data.as_object() else {
        return Err((
            Some(1),
            "a sample is a JSON object: {\"to\": {...}, \"variables\": {...}}".into(),
        ));
    };
    for (key, value) in object {
        let line = line_of_pointer(text, std::slice::from_ref(key));
        let ok = match key.as_str() {
            "to" | "variables" => value.is_object(),
            "time" => value.is_string(),
            _ => {
                return Err((
                    line,
                    format!(
                        "unexpected key {key:?}: a sample has \"to\", \"variables\" and \"time\""
                    ),
                ));
            }
        };
        if !ok {
            let kind = if key == "time" { "an RFC 3339 string" } else { "an object" };
            return Err((line, format!("{key:?} must be {kind}")));
        }
    }
    Ok(data)
}

/// The event a sample stands for, in `locale` when given (else the sample's own, if any).
pub(crate) fn sample_event(
    tenant: &TenantId,
    event_type: &EventType,
    name: &str,
    data: &Value,
    locale: Option<&Locale>,
) -> Result<Event, (Vec<String>, String)> {
    let mut to = data.get("to").cloned().unwrap_or_else(|| json!({ "email": SAMPLE_RECIPIENT }));
    if let (Some(locale), Some(to)) = (locale, to.as_object_mut()) {
        to.insert("locale".into(), Value::String(locale.to_string()));
    }
    let variables = data.get("variables").cloned().unwrap_or_else(|| Value::Object(Map::new()));
    let envelope = json!({
        "specversion": "1.0",
        "id": format!("sample-{name}"),
        "source": format!("{tenant}/samples"),
        "type": event_type.as_str(),
        "tenant": tenant.as_str(),
        "time": data.get("time").cloned().unwrap_or_else(|| Value::String(SAMPLE_TIME.into())),
        "datacontenttype": "application/json",
        "data": { "to": to, "variables": variables },
    });
    decode_message_body(envelope.to_string().as_bytes()).map_err(|error| {
        // `data.to.email: ...` is about the sample's `/to/email`.
        let field = error.reason.split(':').next().unwrap_or_default();
        let pointer: Vec<String> = match field.strip_prefix("data.") {
            Some(path) => path.split('.').map(str::to_owned).collect(),
            None if field == "time" => vec!["time".to_owned()],
            None => Vec::new(),
        };
        (pointer, error.reason)
    })
}

/// An email rendered from a sample or from data given on the command line.
#[derive(Debug, Clone)]
pub struct SampleRender {
    /// The tenant it is from.
    pub profile: Arc<TenantProfile>,
    /// The event the data stands for.
    pub event: Event,
    /// The rendered email, as the worker would send it.
    pub email: RenderedEmail,
    /// True when the text part was generated from the HTML.
    pub text_generated: bool,
}

impl TemplateSet {
    /// Renders one of an event type's samples in `locale` (or the sample's own, else the
    /// tenant's default), exactly as the worker renders an event with that data. Sensitive
    /// variables are not masked: this is the email itself.
    pub fn render_sample(
        &self,
        tenant: &TenantId,
        event_type: &EventType,
        sample: &str,
        locale: Option<&Locale>,
    ) -> Result<SampleRender, PreviewError> {
        let (_, event) = self.find(tenant, event_type)?;
        let Some(found) = event.samples.get(sample) else {
            let names: Vec<&str> = event.samples.keys().map(String::as_str).collect();
            return Err(PreviewError::NotFound {
                what: format!(
                    "{tenant}/{event_type} has no sample {sample:?} (it has: {})",
                    names.join(", ")
                ),
            });
        };
        self.render_data_as(tenant, event_type, sample, &found.data, locale)
    }

    /// Renders an event type with `data`: an event's `data` object (`to`, `variables`, and
    /// optionally `time`) or a whole CloudEvents event, whose `data` and `time` are used.
    pub fn render_data(
        &self,
        tenant: &TenantId,
        event_type: &EventType,
        data: &Value,
        locale: Option<&Locale>,
    ) -> Result<SampleRender, PreviewError> {
        let data = match data.get("specversion") {
            Some(_) => {
                let mut inner = data.get("data").cloned().unwrap_or_else(|| json!({}));
                if let (Some(time), Some(object)) = (data.get("time"), inner.as_object_mut()) {
                    object.insert("time".into(), time.clone());
                }
                inner
            }
            None => data.clone(),
        };
        self.render_data_as(tenant, event_type, "data", &data, locale)
    }

    fn render_data_as(
        &self,
        tenant: &TenantId,
        event_type: &EventType,
        name: &str,
        data: &Value,
        locale: Option<&Locale>,
    ) -> Result<SampleRender, PreviewError> {
        let (templates, files) = self.find(tenant, event_type)?;
        let event = sample_event(tenant, event_type, name, data, locale)
            .map_err(|(_, reason)| PreviewError::Render { reason })?;
        let rendered = crate::render::render_event(templates, &templates.profile, files, &event)
            .map_err(|failure| PreviewError::Render { reason: failure.to_string() })?;
        Ok(SampleRender {
            profile: Arc::clone(&templates.profile),
            event,
            email: rendered.email,
            text_generated: rendered.text_generated,
        })
    }

    fn find(
        &self,
        tenant: &TenantId,
        event_type: &EventType,
    ) -> Result<(&crate::TenantTemplates, &crate::EventTemplates), PreviewError> {
        let templates = self
            .tenants
            .get(tenant)
            .ok_or_else(|| PreviewError::NotFound { what: format!("no tenant {tenant}") })?;
        let event = templates.events.get(event_type).ok_or_else(|| PreviewError::NotFound {
            what: format!("tenant {tenant} has no templates for {event_type}"),
        })?;
        Ok((templates, event))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn checks_the_shape_of_a_sample() {
        assert!(parse_sample("{\"to\": {\"email\": \"a@b.example\"}, \"variables\": {}}").is_ok());
        assert!(parse_sample("{}").is_ok());
        let (line, message) = parse_sample("{\n\"variables\": {},\n\"vars\": {}\n}").unwrap_err();
        assert_eq!(line, Some(3));
        assert!(message.starts_with("unexpected key \"vars\""), "{message}");
        let (line, _) = parse_sample("{\n\"variables\": []\n}").unwrap_err();
        assert_eq!(line, Some(2));
        let (line, message) = parse_sample("{\n\"variables\": {,}\n}").unwrap_err();
        assert_eq!(line, Some(2));
        assert!(message.starts_with("not valid JSON"), "{message}");
    }

    #[test]
    fn a_sample_becomes_an_event_in_the_locale_asked_for() {
        let tenant = TenantId::parse("t1").unwrap();
        let event_type = EventType::parse("e1").unwrap();
        let data =
            json!({ "to": { "email": "a@b.example", "locale": "en" }, "variables": { "x": 1 } });
        let event = sample_event(&tenant, &event_type, "default", &data, None).unwrap();
        assert_eq!(event.recipient.locale.unwrap().as_str(), "en");
        assert_eq!(event.variables["x"], json!(1));
        assert_eq!(event.time.unwrap().to_rfc3339(), "2026-11-27T10:00:00+00:00");
        let ja = Locale::parse("ja").unwrap();
        let event = sample_event(&tenant, &event_type, "default", &data, Some(&ja)).unwrap();
        assert_eq!(event.recipient.locale.unwrap().as_str(), "ja");
        let event = sample_event(&tenant, &event_type, "x", &json!({}), None).unwrap();
        assert_eq!(event.recipient.email.as_str(), SAMPLE_RECIPIENT);
        let bad = json!({ "to": { "email": "nobody" } });
        let (_, reason) = sample_event(&tenant, &event_type, "x", &bad, None).unwrap_err();
        assert!(reason.starts_with("data.to.email"), "{reason}");
    }
}
