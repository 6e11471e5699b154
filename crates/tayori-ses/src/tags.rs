//! The `EmailTags` of a send: who sent it, for which event, which delivery. SES publishes them
//! with every sending event (delivery, bounce, complaint), which is how feedback finds its way
//! back to a tenant and a delivery.

use aws_sdk_sesv2::error::BuildError;
use aws_sdk_sesv2::types::MessageTag;
use tayori_domain::OutgoingEmail;

/// The tag naming the tenant.
pub const TENANT_TAG: &str = "tayori-tenant";
/// The tag naming the event type (`.` written as `_`: see [`tag_value`]).
pub const EVENT_TYPE_TAG: &str = "tayori-event-type";
/// The tag carrying the delivery id.
pub const DELIVERY_ID_TAG: &str = "tayori-delivery-id";

/// SES's limit on a tag value's length.
const MAX_TAG_LEN: usize = 256;

/// The three tags of `email`.
pub(crate) fn email_tags(email: &OutgoingEmail) -> Result<Vec<MessageTag>, BuildError> {
    [
        (TENANT_TAG, email.tenant.as_str().to_owned()),
        (EVENT_TYPE_TAG, email.event_type.as_str().to_owned()),
        (DELIVERY_ID_TAG, email.delivery_id.to_string()),
    ]
    .into_iter()
    .map(|(name, value)| MessageTag::builder().name(name).value(tag_value(&value)).build())
    .collect()
}

/// `value` in the characters SES allows in a tag value (ASCII letters, digits, `_` and `-`, at
/// most 256): every other character becomes `_`, and the rest is cut. An empty value becomes
/// `_`. Tenant ids and delivery ids already fit; event types lose their dots
/// (`deposit.completed` → `deposit_completed`).
pub fn tag_value(value: &str) -> String {
    let sanitized: String = value
        .chars()
        .take(MAX_TAG_LEN)
        .map(|c| if c.is_ascii_alphanumeric() || c == '_' || c == '-' { c } else { '_' })
        .collect();
    if sanitized.is_empty() { "_".to_owned() } else { sanitized }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_keep_only_what_ses_allows() {
        assert_eq!(tag_value("acme-invest"), "acme-invest");
        assert_eq!(tag_value("deposit.completed"), "deposit_completed");
        assert_eq!(tag_value("a b/c:d@e"), "a_b_c_d_e");
        assert_eq!(tag_value("入金"), "__");
        assert_eq!(tag_value(""), "_");
        assert_eq!(tag_value(&"x".repeat(300)).len(), 256);
        let uuid = "0b6c2d8e-5f1a-5c3e-9d7b-2a4e6f8c0d1b";
        assert_eq!(tag_value(uuid), uuid);
    }
}
