//! Who may publish events for a tenant: the producers (queue principals) and the CloudEvents
//! sources a tenant lists in its `tenant.toml`, checked against what the queue itself reports
//! about a message, never against what the body claims.

use crate::TenantId;

/// Sources that tayori uses for its own resends and replays; no producer may publish them.
pub const RESERVED_SOURCE_PREFIX: &str = "tayori:";

/// What the queue reports about who sent a message. Producers cannot set these: SQS fills in
/// `SenderId` from the caller's credentials, and `MessageGroupId` is checked against the body.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Publisher {
    /// SQS's `SenderId`: an IAM user id (`AIDA…`), or `<role id>:<session name>` for a role.
    pub sender_id: Option<String>,
    /// SQS's `MessageGroupId`: the tenant (standard and FIFO queues), or `<tenant>:<ordering
    /// key>` on a FIFO queue.
    pub group_id: Option<String>,
    /// The queue's consumer knows this sender as one of tayori's own (the role that redrives a
    /// dead-letter queue): it may publish for every tenant.
    pub trusted: bool,
}

impl Publisher {
    /// The tenant its group names: the whole group id, or on a FIFO queue its part before the
    /// first `:` (`<tenant>:<ordering key>`).
    pub fn group_tenant(&self) -> Option<&str> {
        let group = self.group_id.as_deref()?;
        Some(group.split_once(':').map_or(group, |(tenant, _)| tenant))
    }

    /// Whether one of `entries` names its sender: a sender id equal to the entry, or an IAM
    /// role's session (`<role id>:<session>`) of the role the entry names.
    pub fn sent_by_one_of(&self, entries: &[String]) -> bool {
        let Some(sender) = self.sender_id.as_deref() else { return false };
        let role = sender.split_once(':').map(|(role, _)| role);
        entries.iter().any(|entry| entry == sender || Some(entry.as_str()) == role)
    }
}

/// A tenant's `producers` and `sources`. Each list is optional; an absent list allows anyone.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PublisherRules {
    /// SQS `SenderId`s allowed to publish for the tenant. An entry matches a sender id equal to
    /// it, or the part of one before `:` (an IAM role's id, whatever the session).
    pub producers: Option<Vec<String>>,
    /// Prefixes of the CloudEvents `source` allowed for the tenant.
    pub sources: Option<Vec<String>>,
}

impl PublisherRules {
    /// True when neither list is given: anyone who can send to the queue publishes as the tenant.
    pub fn is_open(&self) -> bool {
        self.producers.is_none() && self.sources.is_none()
    }

    /// Why an event with this `source`, sent by `publisher` for `tenant`, must not be sent; `None`
    /// when it may. The group id is checked whatever the lists say: a message grouped under
    /// another tenant would be counted against that tenant by SQS fair queues.
    pub fn refusal(
        &self,
        tenant: &TenantId,
        source: &str,
        publisher: &Publisher,
    ) -> Option<String> {
        let tenant = tenant.as_str();
        if let (Some(group), Some(group_tenant)) = (&publisher.group_id, publisher.group_tenant())
            && group_tenant != tenant
        {
            return Some(format!(
                "MessageGroupId {group:?} names another tenant than the event's {tenant:?}; \
                 producers set it to their own tenant id"
            ));
        }
        if source.starts_with(RESERVED_SOURCE_PREFIX) {
            return Some(format!(
                "source {source:?} is reserved for tayori's own resends; producers may not \
                 publish it (tenant {tenant:?})"
            ));
        }
        if let Some(producers) = &self.producers
            && !publisher.trusted
        {
            let Some(sender) = publisher.sender_id.as_deref() else {
                return Some(format!(
                    "the queue did not say who sent this event, and tenant {tenant:?} accepts \
                     events only from its producers"
                ));
            };
            if !publisher.sent_by_one_of(producers) {
                return Some(format!(
                    "producer {sender:?} may not publish for tenant {tenant:?} (not in its \
                     producers)"
                ));
            }
        }
        if let Some(sources) = &self.sources
            && !sources.iter().any(|prefix| source.starts_with(prefix.as_str()))
        {
            let who = publisher.sender_id.as_deref().unwrap_or("unknown");
            return Some(format!(
                "source {source:?} (producer {who:?}) is not one of tenant {tenant:?}'s sources"
            ));
        }
        None
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn pay() -> TenantId {
        TenantId::parse("acme-pay").unwrap()
    }

    fn sent_by(sender: &str) -> Publisher {
        Publisher { sender_id: Some(sender.into()), ..Publisher::default() }
    }

    fn rules(producers: Option<&[&str]>, sources: Option<&[&str]>) -> PublisherRules {
        let list = |items: &[&str]| items.iter().map(|s| (*s).to_owned()).collect();
        PublisherRules { producers: producers.map(list), sources: sources.map(list) }
    }

    #[test]
    fn open_rules_allow_anyone_but_reserved_sources_and_foreign_groups() {
        let open = PublisherRules::default();
        assert!(open.is_open());
        assert_eq!(open.refusal(&pay(), "acme-pay/api", &sent_by("AIDAX")), None);
        assert_eq!(open.refusal(&pay(), "acme-pay/api", &Publisher::default()), None);
        let reserved = open.refusal(&pay(), "tayori:resend", &sent_by("AIDAX")).unwrap();
        assert!(reserved.contains("reserved") && reserved.contains("acme-pay"), "{reserved}");
        for group in ["acme-bank", "acme-bank:order-1", "acme-payx"] {
            let grouped = Publisher { group_id: Some(group.into()), ..sent_by("AIDAX") };
            let refused = open.refusal(&pay(), "acme-pay/api", &grouped).unwrap();
            assert!(refused.contains("MessageGroupId"), "{refused}");
        }
        for group in ["acme-pay", "acme-pay:order-1"] {
            let grouped = Publisher { group_id: Some(group.into()), ..sent_by("AIDAX") };
            assert_eq!(open.refusal(&pay(), "acme-pay/api", &grouped), None, "{group}");
        }
    }

    #[test]
    fn producers_match_a_user_or_any_session_of_a_role() {
        let rules = rules(Some(&["AIDAUSER", "AROAROLE"]), None);
        assert!(!rules.is_open());
        assert_eq!(rules.refusal(&pay(), "s", &sent_by("AIDAUSER")), None);
        assert_eq!(rules.refusal(&pay(), "s", &sent_by("AROAROLE:i-0123")), None);
        let other = rules.refusal(&pay(), "s", &sent_by("AROAOTHER:i-0123")).unwrap();
        assert!(other.contains("AROAOTHER:i-0123") && other.contains("acme-pay"), "{other}");
        // A session named like an allowed role does not pass as it.
        assert!(rules.refusal(&pay(), "s", &sent_by("AROAOTHER:AROAROLE")).is_some());
        let unknown = rules.refusal(&pay(), "s", &Publisher::default()).unwrap();
        assert!(unknown.contains("did not say who sent"), "{unknown}");
        let trusted = Publisher { trusted: true, ..sent_by("AROATAYORI:redrive") };
        assert_eq!(rules.refusal(&pay(), "s", &trusted), None);
        // Trust does not open the reserved sources.
        assert!(rules.refusal(&pay(), "tayori:replay", &trusted).is_some());
    }

    #[test]
    fn sources_are_prefixes() {
        let rules = rules(None, Some(&["acme-pay/", "urn:acme-pay"]));
        assert_eq!(rules.refusal(&pay(), "acme-pay/payments", &sent_by("A")), None);
        assert_eq!(rules.refusal(&pay(), "urn:acme-pay:x", &sent_by("A")), None);
        let refused = rules.refusal(&pay(), "acme-bank/accounts", &sent_by("AIDAB")).unwrap();
        assert!(refused.contains("acme-bank/accounts") && refused.contains("AIDAB"), "{refused}");
    }
}
