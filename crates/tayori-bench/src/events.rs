//! The events the bench publishes: contract-valid CloudEvents built from the samples of the
//! demo tenants' templates, whatever event types and locales the templates directory holds
//! when the bench runs (found through the `TemplateSet` API, not named here).

use chrono::Utc;
use serde_json::Value;
use tayori_domain::{DeliveryId, Event, Mailbox, OutgoingEmail, Subject, decode_message_body};
use tayori_templates::TemplateSet;

/// One (tenant, event type, sample, locale) that renders.
struct Variant {
    tenant: String,
    /// The sample's event, as the worker would receive it.
    envelope: Value,
    /// The MIME message the SES sender would build for it (for the bare-SDK run).
    raw: Vec<u8>,
    from: String,
    to: String,
    configuration_set: Option<String>,
    provider_tenant: Option<String>,
    /// The rendered subject (what the store-only run records with the outcome).
    subject: Subject,
}

/// Builds event bodies round-robin over every variant that renders.
pub struct EventFactory {
    variants: Vec<Variant>,
    skipped: Vec<String>,
}

/// One event to publish.
pub struct BenchEvent {
    /// The SQS message body.
    pub body: String,
    /// Its delivery, as the SES sender's `tayori-delivery-id` tag writes it.
    pub delivery_tag: String,
}

/// What the bare-SDK run sends for one message: the same request the SES sender makes.
pub struct BareEmail<'a> {
    /// The tenant's sender address.
    pub from: &'a str,
    /// The recipient.
    pub to: &'a str,
    /// The raw MIME message.
    pub raw: &'a [u8],
    /// The tenant.
    pub tenant: &'a str,
    /// The tenant's SES configuration set.
    pub configuration_set: Option<&'a str>,
    /// The tenant's SES tenant.
    pub provider_tenant: Option<&'a str>,
}

impl EventFactory {
    /// Every accepted event type of every tenant, with each of its samples in each of its
    /// locales; combinations that do not render are skipped (and listed by [`Self::skipped`]).
    pub fn new(templates: &TemplateSet) -> anyhow::Result<Self> {
        let mut variants = Vec::new();
        let mut skipped = Vec::new();
        for profile in templates.tenants() {
            let tenant = &profile.id;
            for event_type in templates.event_types(tenant) {
                if !templates.accepts(tenant, event_type) {
                    continue;
                }
                for sample in templates.samples(tenant, event_type) {
                    for locale in templates.locales(tenant, event_type) {
                        let name = format!("{tenant}/{event_type}/{sample} ({locale})");
                        match templates.render_sample(tenant, event_type, sample, Some(&locale)) {
                            Ok(render) => {
                                let email = OutgoingEmail {
                                    delivery_id: render.event.key.delivery_id(),
                                    tenant: tenant.clone(),
                                    event_type: event_type.clone(),
                                    from: render.profile.from.clone(),
                                    reply_to: render.profile.reply_to.clone(),
                                    to: Mailbox {
                                        address: render.event.recipient.email.clone(),
                                        name: render.event.recipient.name.clone(),
                                    },
                                    subject: render.email.subject.clone(),
                                    html_body: render.email.html.clone(),
                                    text_body: render.email.text.clone(),
                                    sending: render.profile.sending.clone(),
                                    list_unsubscribe: None,
                                };
                                let raw = tayori_mime::build_message(&email, Utc::now())
                                    .map_err(|e| anyhow::anyhow!("{name}: {e}"))?;
                                variants.push(Variant {
                                    tenant: tenant.to_string(),
                                    envelope: render.event.envelope.clone(),
                                    raw,
                                    from: email.from.address.to_string(),
                                    to: email.to.address.to_string(),
                                    configuration_set: email.sending.configuration_set.clone(),
                                    provider_tenant: email.sending.provider_tenant.clone(),
                                    subject: email.subject.clone(),
                                });
                            }
                            Err(error) => skipped.push(format!("{name}: {error}")),
                        }
                    }
                }
            }
        }
        anyhow::ensure!(!variants.is_empty(), "no sample of any template renders");
        Ok(Self { variants, skipped })
    }

    /// How many (tenant, event type, sample, locale) combinations events cycle through.
    pub fn variants(&self) -> usize {
        self.variants.len()
    }

    /// Distinct tenants and event types covered, for the report.
    pub fn coverage(&self) -> (usize, usize) {
        let mut tenants: Vec<&str> = self.variants.iter().map(|v| v.tenant.as_str()).collect();
        tenants.sort_unstable();
        tenants.dedup();
        let mut types: Vec<String> = self
            .variants
            .iter()
            .map(|v| format!("{}/{}", v.tenant, v.envelope["type"].as_str().unwrap_or_default()))
            .collect();
        types.sort_unstable();
        types.dedup();
        (tenants.len(), types.len())
    }

    /// Combinations that did not render, with why.
    pub fn skipped(&self) -> &[String] {
        &self.skipped
    }

    /// Average size of the raw MIME messages, in bytes.
    pub fn average_raw_size(&self) -> usize {
        self.variants.iter().map(|v| v.raw.len()).sum::<usize>() / self.variants.len()
    }

    /// Average size of the event bodies, in bytes.
    pub fn average_body_size(&self) -> usize {
        let sizes = self.variants.iter().map(|v| v.envelope.to_string().len());
        sizes.sum::<usize>() / self.variants.len()
    }

    /// Event number `i` of the phase `phase`: its own id (`<phase>-<i>`) and source
    /// (`<tenant>/bench`), so every event is a new idempotency key.
    pub fn event(&self, phase: &str, i: usize) -> anyhow::Result<BenchEvent> {
        let (body, event, _) = self.build(phase, i)?;
        Ok(BenchEvent { body, delivery_tag: delivery_tag(event.key.delivery_id()) })
    }

    /// Event number `i` of `phase` for `tenant` alone, round-robin over that tenant's variants.
    pub fn event_of(&self, tenant: &str, phase: &str, i: usize) -> anyhow::Result<BenchEvent> {
        let of_tenant: Vec<usize> =
            (0..self.variants.len()).filter(|v| self.variants[*v].tenant == tenant).collect();
        anyhow::ensure!(!of_tenant.is_empty(), "no sample of tenant {tenant} renders");
        let (body, event, _) = self.build_variant(of_tenant[i % of_tenant.len()], phase, i)?;
        Ok(BenchEvent { body, delivery_tag: delivery_tag(event.key.delivery_id()) })
    }

    /// Event number `i` of `phase` as the worker decodes it, with its rendered subject.
    pub fn decoded(&self, phase: &str, i: usize) -> anyhow::Result<(Event, Subject)> {
        let (_, event, subject) = self.build(phase, i)?;
        Ok((event, subject.clone()))
    }

    fn build(&self, phase: &str, i: usize) -> anyhow::Result<(String, Event, &Subject)> {
        self.build_variant(i % self.variants.len(), phase, i)
    }

    fn build_variant(
        &self,
        variant: usize,
        phase: &str,
        i: usize,
    ) -> anyhow::Result<(String, Event, &Subject)> {
        let variant = &self.variants[variant];
        let mut envelope = variant.envelope.clone();
        envelope["id"] = Value::String(format!("{phase}-{i:07}"));
        envelope["source"] = Value::String(format!("{}/bench", variant.tenant));
        let body = envelope.to_string();
        // The worker's own parser: every published event meets the contract.
        let event = decode_message_body(body.as_bytes())
            .map_err(|e| anyhow::anyhow!("a bench event breaks the contract: {e}"))?;
        Ok((body, event, &variant.subject))
    }

    /// The SES request of message `i` for the bare-SDK run.
    pub fn bare_email(&self, i: usize) -> BareEmail<'_> {
        let variant = &self.variants[i % self.variants.len()];
        BareEmail {
            from: &variant.from,
            to: &variant.to,
            raw: &variant.raw,
            tenant: &variant.tenant,
            configuration_set: variant.configuration_set.as_deref(),
            provider_tenant: variant.provider_tenant.as_deref(),
        }
    }
}

/// A delivery id as the SES sender's tag carries it.
pub fn delivery_tag(id: DeliveryId) -> String {
    tayori_ses::tag_value(&id.to_string())
}
