//! Rendering an event with its tenant's templates: the variable schema, locale resolution, the
//! context, the text part generated when there is no text template, and errors that name the
//! file and line.

use std::fmt;

use serde_json::{Map, Value};
use tayori_app::ports::{
    MessageClass, RenderError, RenderedEmail, TemplateRenderer, TenantProfile,
};
use tayori_domain::{Event, EventType, InvalidSubject, Locale, Subject, TenantId};

use crate::locate::{line_at, line_of_name};
use crate::{EventTemplates, LocaleKey, TemplateFile, TemplateSet, TenantTemplates};

impl TemplateRenderer for TemplateSet {
    #[tracing::instrument(
        level = "debug",
        skip_all,
        fields(tenant = %tenant.id, event_type = %event.event_type, event_id = %event.key.id)
    )]
    fn render(&self, tenant: &TenantProfile, event: &Event) -> Result<RenderedEmail, RenderError> {
        let no_template = || RenderError::NoTemplate {
            tenant: tenant.id.to_string(),
            event_type: event.event_type.to_string(),
        };
        let templates = self.tenants.get(&tenant.id).ok_or_else(no_template)?;
        if !templates.accepted.contains(&event.event_type) {
            return Err(no_template());
        }
        let files = templates.events.get(&event.event_type).ok_or_else(no_template)?;
        match render_event(templates, tenant, files, event) {
            Ok(rendered) => Ok(rendered.email),
            // The reason is stored and shown: it must not carry a sensitive variable's value
            // (tera quotes values in some messages).
            Err(failure) => Err(RenderError::Template {
                reason: crate::mask::mask_text(
                    &failure.to_string(),
                    &event.variables,
                    &files.settings.sensitive_variables,
                ),
            }),
        }
    }

    fn sensitive_variables(&self, tenant: &TenantId, event_type: &EventType) -> Vec<String> {
        self.tenants
            .get(tenant)
            .and_then(|t| t.events.get(event_type))
            .map(|event| event.settings.sensitive_variables.clone())
            .unwrap_or_default()
    }

    fn message_class(&self, tenant: &TenantId, event_type: &EventType) -> MessageClass {
        self.tenants
            .get(tenant)
            .and_then(|t| t.events.get(event_type))
            .map(|event| event.settings.message_class)
            .unwrap_or_default()
    }
}

/// An email rendered, and whether its text part was generated from the HTML.
pub(crate) struct Rendered {
    pub(crate) email: RenderedEmail,
    pub(crate) text_generated: bool,
}

/// Why rendering failed: the file (relative to the templates directory) and line when known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Failure {
    pub(crate) file: Option<String>,
    pub(crate) line: Option<usize>,
    pub(crate) message: String,
}

/// `acme-invest/account.deposit_completed/body.ja.html:12: variable ...`
impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.file, self.line) {
            (Some(file), Some(line)) => write!(f, "{file}:{line}: {}", self.message),
            (Some(file), None) => write!(f, "{file}: {}", self.message),
            (None, _) => f.write_str(&self.message),
        }
    }
}

/// Renders `event` with one event type's templates: no acceptance check (previews and checks
/// render event types that are not accepted yet) and no masking (the caller masks what it
/// shows).
pub(crate) fn render_event(
    templates: &TenantTemplates,
    tenant: &TenantProfile,
    files: &EventTemplates,
    event: &Event,
) -> Result<Rendered, Failure> {
    let variables = Value::Object(event.variables.clone());
    if let Some(schema) = &files.schema {
        // Masked: the reason is stored and shown, and must not quote the event's data.
        let errors: Vec<String> = schema
            .validator
            .iter_errors(&variables)
            .take(3)
            .map(|error| {
                format!("{}: {}", pointer_or_root(error.instance_path().as_str()), error.masked())
            })
            .collect();
        if !errors.is_empty() {
            return Err(Failure {
                file: Some(schema.path.clone()),
                line: None,
                message: format!(
                    "the event's variables do not match the schema: {}",
                    errors.join("; ")
                ),
            });
        }
    }

    let default = &tenant.default_locale;
    // Loading checked that the end of every chain has a template, so this error only guards
    // against a profile that is not the one loaded with the templates.
    let chain = locale_chain(event.recipient.locale.as_ref(), &templates.fallback_locales, default);
    let Some((locale, variant)) =
        chain.iter().find_map(|locale| files.variants.get(locale).map(|v| (locale, v)))
    else {
        return Err(Failure {
            file: Some(files.dir.clone()),
            line: None,
            message: format!("no template for any of the locales {}", describe(&chain)),
        });
    };

    let context = context(tenant, event, variables)?;
    let subject = render_file(templates, &variant.subject, &context)?;
    let subject =
        Subject::parse(&subject).map_err(|error| subject_failure(templates, variant, &error))?;
    let html = render_file(templates, &variant.html, &context)?;
    let text_file = text_candidates(locale).into_iter().find_map(|l| files.texts.get(&l));
    let (text, text_generated) = match text_file {
        Some(file) => (render_file(templates, file, &context)?, false),
        None => (
            html_to_text(&html).map_err(|message| Failure {
                file: Some(variant.html.path.clone()),
                line: None,
                message,
            })?,
            true,
        ),
    };
    Ok(Rendered {
        email: RenderedEmail {
            subject,
            html,
            text,
            locale: locale.clone().unwrap_or_else(|| default.clone()),
            message_class: files.settings.message_class,
        },
        text_generated,
    })
}

fn pointer_or_root(pointer: &str) -> &str {
    if pointer.is_empty() { "(variables)" } else { pointer }
}

/// The locales tried for a recipient, in order: theirs and its truncations, the tenant's
/// fallbacks, then its default, each with its truncations, then locale-neutral (`None`); each
/// once. A recipient without a locale gets the default: the fallbacks are for recipients whose
/// own locale has no template.
pub(crate) fn locale_chain(
    recipient: Option<&Locale>,
    fallbacks: &[Locale],
    default: &Locale,
) -> Vec<LocaleKey> {
    let mut chain: Vec<LocaleKey> = Vec::new();
    let (specific, fallbacks) = match recipient {
        Some(locale) => (locale.fallbacks(), fallbacks),
        None => (Vec::new(), &[][..]),
    };
    let configured = fallbacks.iter().chain(std::iter::once(default)).flat_map(Locale::fallbacks);
    for locale in specific.into_iter().chain(configured) {
        let locale = Some(locale);
        if !chain.contains(&locale) {
            chain.push(locale);
        }
    }
    chain.push(None);
    chain
}

/// Where the text body of a chosen locale comes from, in order: that locale, its truncations,
/// then locale-neutral. (Never another language: without a text template in the email's own
/// language, the text is generated from its HTML.)
pub(crate) fn text_candidates(chosen: &LocaleKey) -> Vec<LocaleKey> {
    let mut candidates: Vec<LocaleKey> =
        chosen.iter().flat_map(Locale::fallbacks).map(Some).collect();
    candidates.push(None);
    candidates
}

fn describe(chain: &[LocaleKey]) -> String {
    let names: Vec<&str> =
        chain.iter().map(|l| l.as_ref().map_or("(locale-neutral)", Locale::as_str)).collect();
    names.join(", ")
}

/// The text part of an email without a text template: the HTML as a mail client's "plain text"
/// view would show it, lines at most 78 columns, links as footnotes.
pub(crate) fn html_to_text(html: &str) -> Result<String, String> {
    let text = html2text::config::plain_no_decorate()
        .raw_mode(true)
        .link_footnotes(true)
        .string_from_read(html.as_bytes(), 78)
        .map_err(|error| format!("cannot generate the text part from the HTML: {error}"))?;
    let mut out = String::with_capacity(text.len());
    for line in text.lines() {
        out.push_str(line.trim_end());
        out.push('\n');
    }
    Ok(out.trim_end().to_owned() + "\n")
}

/// The template context: the event's variables, then the reserved keys `to`, `event` and
/// `tenant`, which replace a variable of the same name.
fn context(
    tenant: &TenantProfile,
    event: &Event,
    variables: Value,
) -> Result<tera::Context, Failure> {
    let recipient = &event.recipient;
    let text = |s: &str| Value::String(s.to_owned());
    let optional = |s: Option<&str>| s.map_or(Value::Null, text);

    let mut to = Map::new();
    to.insert("email".into(), text(recipient.email.as_str()));
    to.insert("name".into(), optional(recipient.name.as_ref().map(|n| n.as_str())));
    to.insert("locale".into(), optional(recipient.locale.as_ref().map(Locale::as_str)));

    let mut about = Map::new();
    about.insert("id".into(), text(event.key.id.as_str()));
    about.insert("source".into(), text(event.key.source.as_str()));
    about.insert("type".into(), text(event.event_type.as_str()));
    about.insert("time".into(), event.time.map_or(Value::Null, |t| Value::String(t.to_rfc3339())));
    about.insert("tenant".into(), text(event.key.tenant.as_str()));

    let mut sender = Map::new();
    sender.insert("id".into(), text(tenant.id.as_str()));
    sender.insert("from".into(), text(tenant.from.address.as_str()));
    sender.insert("from_name".into(), optional(tenant.from.name.as_ref().map(|n| n.as_str())));

    let mut all = match variables {
        Value::Object(all) => all,
        _ => Map::new(),
    };
    for reserved in ["to", "event", "tenant"] {
        if all.contains_key(reserved) {
            tracing::debug!(
                key = reserved,
                "a variable is hidden by the reserved key of that name"
            );
        }
    }
    all.insert("to".into(), Value::Object(to));
    all.insert("event".into(), Value::Object(about));
    all.insert("tenant".into(), Value::Object(sender));
    tera::Context::from_value(Value::Object(all)).map_err(|error| Failure {
        file: None,
        line: None,
        message: format!("cannot build the template context: {}", crate::error_chain(&error)),
    })
}

fn render_file(
    templates: &TenantTemplates,
    file: &TemplateFile,
    context: &tera::Context,
) -> Result<String, Failure> {
    templates
        .tera
        .render(&file.name, context)
        .map_err(|error| tera_failure(templates, file, &error))
}

/// Turns tera's error into a failure naming the file the error is in and, when it can be
/// found, its line. tera 1 says which variable is undefined and in which template, but not on
/// which line: the line is the first use of that name in that template's text.
fn tera_failure(templates: &TenantTemplates, file: &TemplateFile, error: &tera::Error) -> Failure {
    let mut messages: Vec<String> = Vec::new();
    let mut current: Option<&dyn std::error::Error> = Some(error);
    while let Some(error) = current {
        messages.push(crate::one_line(&error.to_string()));
        current = error.source();
    }
    // "Failed to render 'X'" or "Failed to render 'X' (error happened in 'Y')."
    let mut candidates: Vec<String> = Vec::new();
    let outer = messages.first().cloned().unwrap_or_default();
    if outer.starts_with("Failed to render '") {
        messages.remove(0);
        if let Some(name) = quoted_after(&outer, "(error happened in '") {
            candidates.push(name);
        }
    }
    let mut wanted: Option<String> = None;
    let mut template_named: Option<String> = None;
    let mut details: Vec<String> = Vec::new();
    for message in &messages {
        let mut message = message.clone();
        if let Some(name) = quoted_after(&message, "while rendering '") {
            candidates.push(name.clone());
            message = message.replace(&format!(" while rendering '{name}'"), "");
        }
        if let Some(variable) = message
            .strip_prefix("Variable `")
            .and_then(|rest| rest.split_once('`'))
            .map(|(name, _)| name.to_owned())
        {
            if let Some(rest) =
                message.strip_prefix(&format!("Variable `{variable}` not found in context"))
            {
                message = format!(
                    "variable `{variable}` is not defined{rest} (if it is optional, test it with \
                     `{{% if {variable} is defined %}}` or give it a `default`)"
                );
            }
            wanted.get_or_insert(variable);
        } else if let Some(name) = ["Function call '", "Filter call '", "Test call '"]
            .iter()
            .find_map(|prefix| quoted_after(&message, prefix))
        {
            wanted.get_or_insert(name);
        } else if let Some(name) = quoted_after(&message, "Template '") {
            template_named.get_or_insert(name);
        }
        if !details.contains(&message) {
            details.push(message);
        }
    }
    candidates.push(file.name.clone());
    // Then the layouts and partials, in case the name is used in one of them.
    let mut shared: Vec<&String> =
        templates.sources.keys().filter(|name| name.starts_with('_')).collect();
    shared.sort();
    candidates.extend(shared.into_iter().cloned());
    candidates.dedup();

    let found = candidates.iter().find_map(|name| {
        let source = templates.sources.get(name)?;
        let line = match (&wanted, &template_named) {
            (Some(wanted), _) => line_of_name(&source.text, wanted),
            (None, Some(template)) => [format!("\"{template}\""), format!("'{template}'")]
                .iter()
                .find_map(|quoted| source.text.find(quoted.as_str()))
                .map(|offset| line_at(&source.text, offset)),
            (None, None) => None,
        }?;
        Some((source.path.clone(), line))
    });
    let (path, line) = match found {
        Some((path, line)) => (path, Some(line)),
        None => {
            let path = candidates
                .first()
                .and_then(|name| templates.sources.get(name))
                .map_or_else(|| file.path.clone(), |source| source.path.clone());
            (path, None)
        }
    };
    let message = if details.is_empty() { outer } else { details.join(": ") };
    Failure { file: Some(path), line, message }
}

/// The text between `prefix` and the next `'`.
fn quoted_after(message: &str, prefix: &str) -> Option<String> {
    let start = message.find(prefix)? + prefix.len();
    let end = message[start..].find('\'')?;
    Some(message[start..start + end].to_owned())
}

/// A rendered subject that cannot be used, named by its template and the line that causes it.
fn subject_failure(
    templates: &TenantTemplates,
    variant: &crate::Variant,
    error: &InvalidSubject,
) -> Failure {
    let source = templates.sources.get(&variant.subject.name).map(|s| s.text.as_str());
    let (line, cause) = match (error, source) {
        (InvalidSubject::ControlCharacter, Some(text)) => {
            let start = text.len() - text.trim_start().len();
            let content = text.trim();
            match content.find(['\n', '\r']) {
                // The line that should not be there: the one after the first break.
                Some(at) => {
                    (line_at(text, start + at + 1), " (the template has more than one line)")
                }
                None => (1, " (a variable holds a line break or another control character)"),
            }
        }
        _ => (1, ""),
    };
    Failure {
        file: Some(variant.subject.path.clone()),
        line: Some(line),
        message: format!("the rendered subject cannot be used: {error}{cause}"),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn l(raw: &str) -> Locale {
        Locale::parse(raw).unwrap()
    }

    fn names(chain: &[LocaleKey]) -> Vec<String> {
        chain.iter().map(|l| l.as_ref().map_or("-".to_owned(), Locale::to_string)).collect()
    }

    #[test]
    fn chain_goes_recipient_then_fallbacks_then_default_then_neutral() {
        let ja = l("ja");
        assert_eq!(names(&locale_chain(Some(&l("ja-JP")), &[], &ja)), ["ja-JP", "ja", "-"]);
        assert_eq!(names(&locale_chain(Some(&l("en-US")), &[], &ja)), ["en-US", "en", "ja", "-"]);
        assert_eq!(names(&locale_chain(None, &[], &ja)), ["ja", "-"]);
        assert_eq!(names(&locale_chain(Some(&l("ja")), &[], &l("ja-JP"))), ["ja", "ja-JP", "-"]);
        assert_eq!(
            names(&locale_chain(Some(&l("fr-CA")), &[l("en-GB")], &ja)),
            ["fr-CA", "fr", "en-GB", "en", "ja", "-"]
        );
        assert_eq!(names(&locale_chain(None, &[l("en")], &ja)), ["ja", "-"]);
    }

    #[test]
    fn text_comes_from_the_chosen_locale_or_neutral() {
        assert_eq!(names(&text_candidates(&Some(l("en-US")))), ["en-US", "en", "-"]);
        assert_eq!(names(&text_candidates(&Some(l("ja")))), ["ja", "-"]);
        assert_eq!(names(&text_candidates(&None)), ["-"]);
    }

    #[test]
    fn text_is_generated_from_html() {
        let text = html_to_text(
            "<html><head><title>T</title><style>p { color: red }</style></head><body>\
             <p>Hello <b>Taro</b>,</p><p><a href=\"https://example.com/a\">Sign in</a></p>\
             </body></html>",
        )
        .unwrap();
        assert!(text.contains("Hello Taro,"), "{text}");
        assert!(text.contains("https://example.com/a"), "{text}");
        assert!(!text.contains("color: red"), "{text}");
        assert!(!text.contains('<'), "{text}");
    }
}
