//! The event contract v1, held to in both of its machine-readable forms.
//!
//! Every body in `tests/fixtures/events/{valid,invalid}/` (plus a few generated ones too large to
//! commit) goes through the domain parser (`decode_message_body`) and through
//! `schemas/event-v1.json`, and the two must agree with each other and with the directory the
//! fixture sits in. The schema side first applies the rules that `docs/contract.md` lists under
//! "What JSON Schema cannot say": the 1 MiB size limit, JSON parsing, and SNS unwrapping.
//!
//! `cargo test -p tayori-domain --test contract_corpus -- --nocapture` prints a table of every case.

#![allow(clippy::unwrap_used)]

use std::fmt::Write as _;
use std::fs;
use std::path::PathBuf;
use std::sync::LazyLock;

use jsonschema::Validator;
use proptest::prelude::*;
use serde_json::{Value, json};
use tayori_domain::{MAX_EVENT_BYTES, decode_message_body};

/// The documented body size limit (docs/contract.md), restated here rather than imported so
/// that the harness does not simply trust the parser.
const DOCUMENTED_MAX_BODY_BYTES: usize = 1_048_576;

fn repo_root() -> PathBuf {
    manifest_dir().join("../..")
}

fn schema_json() -> Value {
    let path = repo_root().join("schemas/event-v1.json");
    let text = fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The schema compiled for draft 2020-12 with `format` asserted (it is only an annotation by
/// default), built once.
fn schema_validator() -> &'static Validator {
    static VALIDATOR: LazyLock<Validator> = LazyLock::new(|| {
        jsonschema::draft202012::options()
            .should_validate_formats(true)
            .build(&schema_json())
            .expect("schemas/event-v1.json compiles as a draft 2020-12 schema")
    });
    &VALIDATOR
}

/// The parser's verdict: `Err` carries its reason.
fn parser_verdict(body: &[u8]) -> Result<(), String> {
    decode_message_body(body).map(|_| ()).map_err(|e| e.reason)
}

/// The schema's verdict, after the documented rules that live outside the schema.
fn schema_verdict(validator: &Validator, body: &[u8]) -> Result<(), String> {
    // 1. Size: at most 1 MiB, and not empty.
    if body.is_empty() {
        return Err("outside schema: body is empty".into());
    }
    if body.len() > DOCUMENTED_MAX_BODY_BYTES {
        return Err(format!("outside schema: body is {} bytes, over 1 MiB", body.len()));
    }
    // 2. The body must parse as JSON.
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| format!("outside schema: body is not JSON: {e}"))?;
    // 2b. No object names a member twice (a parsed value has already lost the first).
    if let Some(name) = member_named_twice(body) {
        return Err(format!("outside schema: member {name:?} named twice"));
    }
    // 3. An SNS Notification is unwrapped once; its Message must be a string holding JSON.
    let envelope = if value.get("Type").and_then(Value::as_str) == Some("Notification")
        && value.get("specversion").is_none()
    {
        let Some(Value::String(message)) = value.get("Message") else {
            return Err("outside schema: SNS Message is not a string".into());
        };
        if let Some(name) = member_named_twice(message.as_bytes()) {
            return Err(format!("outside schema: SNS Message: member {name:?} named twice"));
        }
        serde_json::from_str(message)
            .map_err(|e| format!("outside schema: SNS Message is not JSON: {e}"))?
    } else {
        value
    };
    // 4. Everything else is the schema's.
    let errors: Vec<String> = validator
        .iter_errors(&envelope)
        .map(|e| format!("{} at '{}'", short(&e.to_string()), e.instance_path()))
        .collect();
    if errors.is_empty() { Ok(()) } else { Err(errors.join("; ")) }
}

/// The first member name some object in `json` repeats, found on the harness's own tree (an
/// object kept as its list of members, in order) rather than by the parser under test.
fn member_named_twice(json: &[u8]) -> Option<String> {
    enum Node {
        Leaf,
        List(Vec<Node>),
        Object(Vec<(String, Node)>),
    }
    impl<'de> serde::Deserialize<'de> for Node {
        fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            struct V;
            impl<'de> serde::de::Visitor<'de> for V {
                type Value = Node;
                fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                    f.write_str("JSON")
                }
                fn visit_bool<E>(self, _: bool) -> Result<Node, E> {
                    Ok(Node::Leaf)
                }
                fn visit_i64<E>(self, _: i64) -> Result<Node, E> {
                    Ok(Node::Leaf)
                }
                fn visit_u64<E>(self, _: u64) -> Result<Node, E> {
                    Ok(Node::Leaf)
                }
                fn visit_f64<E>(self, _: f64) -> Result<Node, E> {
                    Ok(Node::Leaf)
                }
                fn visit_str<E>(self, _: &str) -> Result<Node, E> {
                    Ok(Node::Leaf)
                }
                fn visit_unit<E>(self) -> Result<Node, E> {
                    Ok(Node::Leaf)
                }
                fn visit_seq<A: serde::de::SeqAccess<'de>>(
                    self,
                    mut a: A,
                ) -> Result<Node, A::Error> {
                    let mut items = Vec::new();
                    while let Some(item) = a.next_element()? {
                        items.push(item);
                    }
                    Ok(Node::List(items))
                }
                fn visit_map<A: serde::de::MapAccess<'de>>(
                    self,
                    mut a: A,
                ) -> Result<Node, A::Error> {
                    let mut members = Vec::new();
                    while let Some(member) = a.next_entry::<String, Node>()? {
                        members.push(member);
                    }
                    Ok(Node::Object(members))
                }
            }
            d.deserialize_any(V)
        }
    }
    fn first_repeat(node: &Node) -> Option<String> {
        match node {
            Node::Leaf => None,
            Node::List(items) => items.iter().find_map(first_repeat),
            Node::Object(members) => {
                let mut names: Vec<&str> = members.iter().map(|(n, _)| n.as_str()).collect();
                names.sort_unstable();
                let repeated = names.windows(2).find(|w| w[0] == w[1]).map(|w| w[0].to_owned());
                repeated.or_else(|| members.iter().find_map(|(_, n)| first_repeat(n)))
            }
        }
    }
    first_repeat(&serde_json::from_slice::<Node>(json).ok()?)
}

/// Keeps table cells readable when an error quotes a huge instance.
fn short(text: &str) -> String {
    const LIMIT: usize = 90;
    let text = text.replace(['\r', '\n'], " ");
    if text.chars().count() <= LIMIT {
        text
    } else {
        let cut: String = text.chars().take(LIMIT).collect();
        format!("{cut}…")
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Expected {
    Valid,
    Invalid,
}

struct Case {
    name: String,
    expected: Expected,
    body: Vec<u8>,
}

fn fixture_cases(dir: &str, expected: Expected) -> Vec<Case> {
    let path = repo_root().join("tests/fixtures/events").join(dir);
    let mut cases: Vec<Case> = fs::read_dir(&path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .map(|entry| entry.unwrap().path())
        .filter(|p| p.extension().is_some_and(|ext| ext == "json"))
        .map(|p| Case {
            name: format!("{dir}/{}", p.file_name().unwrap().to_string_lossy()),
            expected,
            body: fs::read(&p).unwrap(),
        })
        .collect();
    cases.sort_by(|a, b| a.name.cmp(&b.name));
    cases
}

/// A valid-looking envelope whose `data.variables.padding` makes the body exactly `size` bytes.
fn envelope_of_size(size: usize) -> Vec<u8> {
    let mut event = json!({
        "specversion": "1.0",
        "id": "01JD8Z6Q7K2V4X9M3N5P1R0T8W",
        "source": "acme-invest/accounts",
        "type": "account.deposit_completed",
        "tenant": "acme-invest",
        "data": {
            "to": { "email": "taro.yamada@example.com" },
            "variables": { "padding": "" }
        }
    });
    let bare = serde_json::to_vec(&event).unwrap().len();
    event["data"]["variables"]["padding"] = json!("x".repeat(size - bare));
    let body = serde_json::to_vec(&event).unwrap();
    assert_eq!(body.len(), size);
    body
}

/// Bodies too large to commit, built here.
fn generated_cases() -> Vec<Case> {
    vec![
        Case {
            name: "generated/body-exactly-1-mib".into(),
            expected: Expected::Valid,
            body: envelope_of_size(DOCUMENTED_MAX_BODY_BYTES),
        },
        Case {
            name: "generated/body-1-mib-plus-1-byte".into(),
            expected: Expected::Invalid,
            body: envelope_of_size(DOCUMENTED_MAX_BODY_BYTES + 1),
        },
        Case {
            name: "generated/body-2-mib".into(),
            expected: Expected::Invalid,
            body: envelope_of_size(2 * 1024 * 1024),
        },
    ]
}

#[test]
fn parser_and_schema_agree_on_every_fixture() {
    assert_eq!(DOCUMENTED_MAX_BODY_BYTES, MAX_EVENT_BYTES, "docs and parser disagree on the limit");
    let validator = schema_validator();
    let valid = fixture_cases("valid", Expected::Valid);
    let invalid = fixture_cases("invalid", Expected::Invalid);
    assert!(valid.len() >= 6, "expected at least 6 valid fixtures, found {}", valid.len());
    assert!(invalid.len() >= 25, "expected at least 25 invalid fixtures, found {}", invalid.len());

    let cases: Vec<Case> = valid.into_iter().chain(invalid).chain(generated_cases()).collect();
    let mut table = String::new();
    let mut problems = Vec::new();
    writeln!(
        table,
        "{:<52} {:<8} {:<7} {:<7} parser reason | schema reason",
        "case", "expected", "parser", "schema"
    )
    .unwrap();
    for case in &cases {
        let parser = parser_verdict(&case.body);
        let schema = schema_verdict(validator, &case.body);
        let word = |r: &Result<(), String>| if r.is_ok() { "accept" } else { "reject" };
        writeln!(
            table,
            "{:<52} {:<8} {:<7} {:<7} {} | {}",
            case.name,
            if case.expected == Expected::Valid { "valid" } else { "invalid" },
            word(&parser),
            word(&schema),
            parser.as_ref().err().map_or("-".into(), |r| short(r)),
            schema.as_ref().err().map_or("-".into(), |r| short(r)),
        )
        .unwrap();

        let want_ok = case.expected == Expected::Valid;
        if parser.is_ok() != want_ok {
            problems.push(format!("{}: parser says {} ({:?})", case.name, word(&parser), parser));
        }
        if schema.is_ok() != want_ok {
            problems.push(format!("{}: schema says {} ({:?})", case.name, word(&schema), schema));
        }
        if parser.is_ok() != schema.is_ok() {
            problems.push(format!(
                "{}: parser and schema disagree (parser {:?}, schema {:?})",
                case.name, parser, schema
            ));
        }
        if let Err(reason) = &parser
            && reason.trim().is_empty()
        {
            problems.push(format!("{}: parser rejected it without a reason", case.name));
        }
    }
    println!("{table}");
    println!("{} cases, {} problems", cases.len(), problems.len());
    assert!(problems.is_empty(), "contract corpus problems:\n  {}", problems.join("\n  "));
}

#[test]
fn valid_fixtures_decode_to_what_they_say() {
    let read =
        |name: &str| fs::read(repo_root().join("tests/fixtures/events/valid").join(name)).unwrap();
    let ja = decode_message_body(&read("deposit-completed-ja.json")).unwrap();
    assert_eq!(ja.key.tenant.as_str(), "acme-invest");
    assert_eq!(ja.key.source.as_str(), "acme-invest/accounts");
    assert_eq!(ja.key.id.as_str(), "01JD8Z6Q7K2V4X9M3N5P1R0T8W");
    assert_eq!(ja.event_type.as_str(), "account.deposit_completed");
    assert_eq!(ja.recipient.email.as_str(), "taro.yamada@example.com");
    assert_eq!(ja.recipient.name.unwrap().as_str(), "山田 太郎");
    assert_eq!(ja.recipient.locale.unwrap().as_str(), "ja");
    assert_eq!(ja.variables["amount"], 50000);
    assert!(!ja.sns_wrapped);

    let en = decode_message_body(&read("deposit-completed-en.json")).unwrap();
    assert_eq!(en.recipient.name.unwrap().as_str(), "Taro Yamada");
    assert_eq!(en.recipient.locale.unwrap().as_str(), "en");

    let minimal = decode_message_body(&read("minimal.json")).unwrap();
    assert!(minimal.time.is_none() && minimal.recipient.name.is_none());
    assert!(minimal.recipient.locale.is_none() && minimal.variables.is_empty());

    let wrapped = decode_message_body(&read("sns-wrapped.json")).unwrap();
    assert!(wrapped.sns_wrapped);
    assert_eq!(wrapped.key.tenant.as_str(), "acme-invest");

    let long_id = decode_message_body(&read("id-256-chars.json")).unwrap();
    assert_eq!(long_id.key.id.as_str().chars().count(), 256);

    // `null` is absent: no name, no locale (the tenant's default applies), no variables.
    let nulls = decode_message_body(&read("optional-fields-null.json")).unwrap();
    assert!(nulls.time.is_none() && nulls.recipient.name.is_none());
    assert!(nulls.recipient.locale.is_none() && nulls.variables.is_empty());

    // Data values are the template's, whatever characters they hold.
    let controls = decode_message_body(&read("variables-control-characters.json")).unwrap();
    assert_eq!(controls.variables["note"], "NUL \u{0}, CR LF \r\n, DEL \u{7f}");
}

#[test]
fn schema_file_is_a_valid_draft_2020_12_schema() {
    let schema = schema_json();
    assert_eq!(schema["$schema"], "https://json-schema.org/draft/2020-12/schema");
    if let Err(error) = jsonschema::draft202012::meta::validate(&schema) {
        panic!("schemas/event-v1.json is not a valid draft 2020-12 schema: {error}");
    }
    let validator = schema_validator();
    assert_eq!(validator.draft(), jsonschema::Draft::Draft202012);
}

/// The example envelope, with one field replaced by `value` (`None` removes it).
fn example_with(path: &[&str], value: Option<Value>) -> Vec<u8> {
    let mut event = json!({
        "specversion": "1.0",
        "id": "01JD8Z6Q7K2V4X9M3N5P1R0T8W",
        "source": "acme-invest/accounts",
        "type": "account.deposit_completed",
        "time": "2026-11-27T10:00:00Z",
        "tenant": "acme-invest",
        "datacontenttype": "application/json",
        "data": {
            "to": { "email": "taro.yamada@example.com", "name": "Taro Yamada", "locale": "en" },
            "variables": { "amount": 50000 }
        }
    });
    let (last, parents) = path.split_last().unwrap();
    let mut target = &mut event;
    for key in parents {
        target = &mut target[*key];
    }
    let object = target.as_object_mut().unwrap();
    match value {
        Some(value) => object.insert((*last).to_owned(), value),
        None => object.remove(*last),
    };
    serde_json::to_vec(&event).unwrap()
}

fn agree(validator: &Validator, body: &[u8]) -> Result<(), TestCaseError> {
    let parser = parser_verdict(body);
    let schema = schema_verdict(validator, body);
    prop_assert_eq!(
        parser.is_ok(),
        schema.is_ok(),
        "body {}\nparser {:?}\nschema {:?}",
        String::from_utf8_lossy(body),
        parser,
        schema
    );
    Ok(())
}

/// Strings near each rule's edges, for the differential tests below.
fn field_strings() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z0-9._-]{0,130}",
        "[A-Za-z0-9 ._~:/?#@!$&'()*+,;=%\\[\\]<>\"\\\\^`{|}-]{0,40}",
        "[a-z]{1,8}(-[A-Za-z0-9]{1,9}){0,5}",
        "[A-Za-z0-9.+_-]{1,66}@[a-z0-9-]{0,10}(\\.[a-z0-9-]{0,10}){0,3}",
        "[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2}:[0-9]{2}(\\.[0-9]{0,3})?([Zz]|[+-][0-9]{2}:[0-9]{2})?",
        "\\PC{0,20}",
        "[\\x00-\\x20\\x7f-\\u{a0}a-z]{0,10}",
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, failure_persistence: None, ..ProptestConfig::default() })]

    /// Parser and schema agree on generated values for each string field, not just on fixtures.
    #[test]
    fn parser_and_schema_agree_on_generated_fields(
        field in prop::sample::select(vec![
            "specversion", "id", "source", "type", "tenant", "time", "datacontenttype", "subject",
            "data.to.email", "data.to.name", "data.to.locale",
        ]),
        raw in field_strings(),
    ) {
        let validator = schema_validator();
        let path: Vec<&str> = field.split('.').collect();
        agree(validator, &example_with(&path, Some(Value::String(raw))))?;
    }

    /// ... and on values of the wrong JSON type, and on removing a field.
    #[test]
    fn parser_and_schema_agree_on_wrong_types_and_absence(
        field in prop::sample::select(vec![
            "specversion", "id", "source", "type", "tenant", "time", "datacontenttype", "subject",
            "data", "data.to", "data.to.email", "data.to.name", "data.to.locale", "data.variables",
        ]),
        value in prop_oneof![
            Just(None),
            Just(Some(Value::Null)),
            any::<bool>().prop_map(|b| Some(Value::Bool(b))),
            any::<i64>().prop_map(|n| Some(json!(n))),
            Just(Some(json!([]))),
            Just(Some(json!({}))),
        ],
    ) {
        let validator = schema_validator();
        let path: Vec<&str> = field.split('.').collect();
        agree(validator, &example_with(&path, value))?;
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, failure_persistence: None, ..ProptestConfig::default() })]

    /// ... and on bodies that are barely an envelope at all, plain or SNS-wrapped.
    #[test]
    fn parser_and_schema_agree_on_odd_bodies(
        body in prop_oneof![
            proptest::collection::vec(any::<u8>(), 0..64),
            "[\\[\\]{}\":,0-9a-zA-Z ]{0,40}".prop_map(String::into_bytes),
            (any::<bool>(), "\\PC{0,20}").prop_map(|(with_spec, message)| {
                let mut sns = json!({ "Type": "Notification", "Message": message });
                if with_spec {
                    sns["specversion"] = json!("1.0");
                }
                serde_json::to_vec(&sns).unwrap()
            }),
        ],
    ) {
        agree(schema_validator(), &body)?;
    }
}

/// This package's directory, read when the test runs (cargo sets it): a test binary reused
/// from a build in another checkout must still read this checkout's files.
fn manifest_dir() -> std::path::PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map_or_else(|| env!("CARGO_MANIFEST_DIR").into(), std::path::PathBuf::from)
}
