//! The SES sender against moto server through the real SDK client: what SES stores is the whole
//! raw message, so the tests assert on every header and both parts. moto's state is shared by
//! every test of the run, so each test uses a sender domain of its own and finds its message by
//! its delivery id; nobody resets moto.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::HashMap;

use mail_parser::{Address, MessageParser};
use tayori_app::ports::{EmailSender, SendError};
use tayori_ses::{SendRateSource, SesConfig, SesSender};

use support::{delivery_id, email, moto_config, moto_endpoint, sdk_config, sender, unique};

/// A sender domain verified in moto, unique to the calling test.
async fn verified_domain(endpoint: &str, test: &str) -> String {
    let domain = format!("{}.example.com", unique(test));
    let client = aws_sdk_sesv2::Client::new(&sdk_config(endpoint).await);
    client.create_email_identity().email_identity(&domain).send().await.expect("identity created");
    domain
}

/// The raw messages moto has stored (`GET /moto-api/data.json` → `ses` → `RawMessage`).
async fn raw_messages(endpoint: &str) -> Vec<serde_json::Value> {
    let data: serde_json::Value = reqwest::get(format!("{endpoint}/moto-api/data.json"))
        .await
        .unwrap()
        .error_for_status()
        .unwrap()
        .json()
        .await
        .unwrap();
    data["ses"]["RawMessage"].as_array().cloned().unwrap_or_default()
}

fn first_address(address: Option<&Address<'_>>) -> (Option<String>, Option<String>) {
    let first = address.and_then(|address| address.first()).expect("an address");
    (first.name().map(str::to_owned), first.address().map(str::to_owned))
}

#[tokio::test]
async fn the_whole_raw_message_reaches_ses() {
    let endpoint = moto_endpoint();
    let domain = verified_domain(&endpoint, "whole").await;
    let configuration_set = unique("tayori-whole");
    aws_sdk_sesv2::Client::new(&sdk_config(&endpoint).await)
        .create_configuration_set()
        .configuration_set_name(&configuration_set)
        .send()
        .await
        .expect("configuration set created");
    let mut email = email("acme-invest", &domain, delivery_id("acme-invest"));
    email.sending.configuration_set = Some(configuration_set);
    email.sending.provider_tenant = Some("acme-invest-prod".to_owned());

    let sent = sender(&endpoint, &moto_config()).await.send(&email).await.expect("accepted");

    let delivery_id = email.delivery_id.to_string();
    let stored: Vec<serde_json::Value> = raw_messages(&endpoint)
        .await
        .into_iter()
        .filter(|message| message["raw_data"].as_str().unwrap_or_default().contains(&delivery_id))
        .collect();
    assert_eq!(stored.len(), 1, "exactly one message for the delivery: {stored:?}");
    assert_eq!(stored[0]["id"].as_str(), Some(sent.provider_message_id.as_str()), "{stored:?}");
    let raw = stored[0]["raw_data"].as_str().unwrap();

    let message = MessageParser::default().parse(raw.as_bytes()).expect("parses as a message");
    assert_eq!(
        first_address(message.from()),
        (Some("アクメ証券 お知らせ".to_owned()), Some(format!("noreply@{domain}")))
    );
    assert_eq!(
        first_address(message.to()),
        (Some("山田 太郎".to_owned()), Some("taro.yamada@example.com".to_owned()))
    );
    assert_eq!(
        first_address(message.reply_to()),
        (Some("サポート窓口".to_owned()), Some(format!("support@{domain}")))
    );
    assert_eq!(message.subject(), Some("【アクメ証券】入金完了のお知らせ"));
    assert_eq!(message.message_id(), Some(email.message_id().as_str()));
    assert_eq!(
        message.header_raw("X-Tayori-Delivery-Id").map(str::trim),
        Some(delivery_id.as_str())
    );
    assert!(message.date().is_some(), "a Date header");
    assert_eq!(message.text_body_count(), 1);
    assert_eq!(message.html_body_count(), 1);
    assert_eq!(
        message.body_text(0).as_deref(),
        Some("山田 太郎 様\r\n\r\n10,000円の入金を確認しました。\r\n")
    );
    assert_eq!(
        message.body_html(0).as_deref(),
        Some("<p>山田 太郎 様</p>\r\n<p>10,000円の入金を確認しました。</p>\r\n")
    );
    // The headers are encoded on the wire, never raw UTF-8.
    let head = &raw[..raw.find("\r\n\r\n").unwrap()];
    assert!(head.is_ascii(), "{head}");
}

#[tokio::test]
async fn an_unverified_sender_is_rejected_by_ses() {
    let endpoint = moto_endpoint();
    let domain = format!("{}.example.com", unique("unverified"));
    let email = email("acme-invest", &domain, delivery_id("acme-invest"));

    let error = sender(&endpoint, &moto_config()).await.send(&email).await.unwrap_err();

    match &error {
        SendError::Rejected { reason } => assert!(reason.contains("MessageRejected"), "{reason}"),
        other => panic!("expected Rejected, got {other:?}"),
    }
    assert!(!error.is_transient());
    let delivery_id = email.delivery_id.to_string();
    assert!(
        !raw_messages(&endpoint)
            .await
            .iter()
            .any(|message| message["raw_data"].as_str().unwrap_or_default().contains(&delivery_id)),
        "nothing stored for a rejected email"
    );
}

#[tokio::test]
async fn without_get_account_the_configured_rate_is_used() {
    // moto answers GetAccount with 404: the sender falls back to sender.send_rate.
    let endpoint = moto_endpoint();
    let config = SesConfig { read_account_send_rate: true, send_rate: 7.5, ..moto_config() };

    let sender = SesSender::from_sdk_config(&sdk_config(&endpoint).await, &config, &HashMap::new())
        .await
        .unwrap();

    assert_eq!(sender.send_rate(), 7.5);
    assert_eq!(sender.send_rate_source(), SendRateSource::Config);
}
