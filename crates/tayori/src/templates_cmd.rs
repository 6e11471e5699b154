//! `tayori templates check|render`: the template authors' tools.
//!
//! `check` is what a template repository runs in CI (see `templates/README.md`): every problem
//! as `file:line: message`, a summary, and a non-zero exit when there is any problem. `render`
//! prints one email as the worker would build it, from a sample or from a data file.

use std::io::Write;
use std::path::PathBuf;

use anyhow::{Context, anyhow, bail};
use clap::{Args, Subcommand, ValueEnum};
use tayori_domain::{EventType, Locale, Mailbox, OutgoingEmail, TenantId};
use tayori_templates::TemplateSet;

/// `tayori templates ...`.
#[derive(Subcommand)]
pub enum TemplatesCommand {
    /// Check every template: compile each file, render every sample of every event type in
    /// every locale, validate samples against their schemas. Prints `file:line: message` for each
    /// problem and a summary; exits with 1 when there is any problem.
    Check(CheckArgs),
    /// Render one event type of a tenant with one of its samples (or a data file) and print the
    /// HTML, the text or the whole message (`.eml`).
    Render(RenderArgs),
}

/// Options of `tayori templates check`.
#[derive(Args)]
pub struct CheckArgs {
    /// The templates directory: one folder per tenant.
    #[arg(default_value = "templates", env = "TAYORI_TEMPLATES_DIR")]
    pub dir: PathBuf,
    /// `text`: one `file:line: message` line per problem, then a summary. `json`: one object
    /// `{"ok", "problems": [{"file", "line", "message"}], "summary"}`, for CI tools.
    #[arg(long, value_enum, default_value = "text")]
    pub format: CheckFormat,
}

/// How `check` prints its report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum CheckFormat {
    /// Lines for people and editors.
    Text,
    /// One JSON object.
    Json,
}

/// Options of `tayori templates render`.
#[derive(Args)]
pub struct RenderArgs {
    /// The tenant, e.g. acme-invest.
    pub tenant: String,
    /// The event type, e.g. account.deposit_completed.
    pub event_type: String,
    /// One of the event type's samples (`samples/<name>.json`); default: `default`, else the
    /// first.
    #[arg(long, conflicts_with = "data")]
    pub sample: Option<String>,
    /// A JSON file with the event's `data` (`{"to": {...}, "variables": {...}}`) or a whole
    /// CloudEvents event.
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// The recipient's locale (fallbacks apply as for a real event); default: the data's
    /// `to.locale`, else the tenant's default locale.
    #[arg(long)]
    pub locale: Option<String>,
    /// What to print: the HTML part, the text part, or the whole MIME message as it would be
    /// sent (sensitive variables are not masked: this is the email itself).
    #[arg(long, value_enum, default_value = "html")]
    pub format: RenderFormat,
    /// The templates directory.
    #[arg(long, default_value = "templates", env = "TAYORI_TEMPLATES_DIR")]
    pub templates: PathBuf,
}

/// What `render` prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum RenderFormat {
    /// The HTML part.
    Html,
    /// The plain-text part.
    Text,
    /// The RFC 5322 message (`.eml`), as every sender builds it.
    Eml,
}

/// Runs a `tayori templates` subcommand.
pub fn run(command: TemplatesCommand) -> anyhow::Result<()> {
    match command {
        TemplatesCommand::Check(args) => check(&args),
        TemplatesCommand::Render(args) => render(&args),
    }
}

fn check(args: &CheckArgs) -> anyhow::Result<()> {
    let report = TemplateSet::check(&args.dir);
    let mut out = std::io::stdout().lock();
    match args.format {
        CheckFormat::Text => {
            for problem in &report.problems {
                writeln!(out, "{problem}")?;
            }
            writeln!(out, "{}", report.summary_line())?;
        }
        CheckFormat::Json => {
            writeln!(out, "{}", serde_json::to_string_pretty(&report.to_json())?)?;
        }
    }
    out.flush()?;
    if report.is_ok() {
        Ok(())
    } else {
        let n = report.problems.len();
        Err(anyhow!(
            "{n} problem{} in the templates in {}",
            if n == 1 { "" } else { "s" },
            args.dir.display()
        ))
    }
}

fn render(args: &RenderArgs) -> anyhow::Result<()> {
    let tenant = TenantId::parse(&args.tenant).context("TENANT")?;
    let event_type = EventType::parse(&args.event_type).context("EVENT")?;
    let locale = args.locale.as_deref().map(Locale::parse).transpose().context("--locale")?;

    // Problems elsewhere do not stop an author from rendering what does load.
    let report = TemplateSet::check(&args.templates);
    for problem in &report.problems {
        eprintln!("warning: {problem}");
    }
    let set = report.templates();
    if set.tenants().all(|t| t.id != tenant) {
        bail!("no tenant {tenant} loaded from {}", args.templates.display());
    }

    let rendered = match &args.data {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read {}", path.display()))?;
            let data: serde_json::Value = serde_json::from_str(&text)
                .with_context(|| format!("{} is not JSON", path.display()))?;
            set.render_data(&tenant, &event_type, &data, locale.as_ref())
        }
        None => {
            let samples = set.samples(&tenant, &event_type);
            let sample = match &args.sample {
                Some(sample) => sample.clone(),
                None if samples.contains(&"default") => "default".to_owned(),
                None => samples
                    .first()
                    .map(|s| (*s).to_owned())
                    .ok_or_else(|| anyhow!("{tenant}/{event_type} has no samples"))?,
            };
            set.render_sample(&tenant, &event_type, &sample, locale.as_ref())
        }
    }
    .map_err(|error| anyhow!("{error}"))?;

    let email = &rendered.email;
    eprintln!(
        "{tenant}/{event_type}: locale {}, {}{}",
        email.locale,
        email.message_class,
        if rendered.text_generated { ", text generated from the HTML" } else { "" }
    );
    let mut out = std::io::stdout().lock();
    match args.format {
        RenderFormat::Html => out.write_all(email.html.as_bytes())?,
        RenderFormat::Text => out.write_all(email.text.as_bytes())?,
        RenderFormat::Eml => {
            let profile = &rendered.profile;
            let event = &rendered.event;
            let outgoing = OutgoingEmail {
                delivery_id: event.key.delivery_id(),
                tenant: tenant.clone(),
                event_type: event_type.clone(),
                from: profile.from.clone(),
                reply_to: profile.reply_to.clone(),
                to: Mailbox {
                    address: event.recipient.email.clone(),
                    name: event.recipient.name.clone(),
                },
                subject: email.subject.clone(),
                html_body: email.html.clone(),
                text_body: email.text.clone(),
                sending: profile.sending.clone(),
                list_unsubscribe: None,
            };
            let bytes = tayori_mime::build_message(&outgoing, chrono::Utc::now())
                .context("cannot build the message")?;
            out.write_all(&bytes)?;
        }
    }
    out.flush()?;
    Ok(())
}
