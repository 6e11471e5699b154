//! Fuzzing the event path: generated envelopes, valid ones mutated (members removed, wrong types,
//! `null`s, control characters, huge strings, members given twice, SNS wrapping, random bytes),
//! through `decode_message_body` and the handle-event use case on the in-memory fakes. Whatever
//! the bytes: no panic, every message ends in an outcome (none is left to retry), and every
//! rejection has a reason, recorded as the store keeps it.
//!
//! A short run (2,000 envelopes) is part of the test suite; `scripts/fuzz` runs the long one
//! (`fuzz_long`, ignored here) with `TAYORI_FUZZ_CASES` and `TAYORI_FUZZ_SEED`, printing progress
//! and a summary.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)] // a test's report

use std::collections::HashMap;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::executor::block_on;
use proptest::prelude::RngExt;
use proptest::test_runner::{RngAlgorithm, TestRng};
use serde_json::{Map, Value, json};
use tayori_app::ports::DeliveryStore;
use tayori_app::testing::{
    FakeRenderer, FakeSuppressions, FakeTenants, InMemoryStore, ManualClock, RecordingSender,
};
use tayori_app::{DeliveryPolicy, EventHandler, Handled, InboundMessage};
use tayori_domain::{MAX_EVENT_BYTES, Outcome, decode_message_body};

/// The fakes, made again every few thousand envelopes so that memory stays flat.
struct World {
    store: Arc<InMemoryStore>,
    handler: EventHandler,
}

fn world() -> World {
    let store = Arc::new(InMemoryStore::default());
    let suppressions = Arc::new(FakeSuppressions::default());
    suppressions.suppress("acme-invest", "blocked@example.com");
    let handler = EventHandler {
        store: store.clone(),
        tenants: Arc::new(FakeTenants::with(&["acme-invest", "acme-bank"])),
        suppressions,
        renderer: Arc::new(FakeRenderer::knowing(&["account.deposit_completed"])),
        sender: Arc::new(RecordingSender::default()),
        clock: Arc::new(ManualClock::new()),
        policy: DeliveryPolicy::default(),
        worker_id: "fuzz".into(),
        pauses: Default::default(),
    };
    World { store, handler }
}

/// What happened to one message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Fate {
    Sent,
    Suppressed,
    Rejected,
    RejectedWithoutKey,
    Failed,
    Unknown,
    Duplicate,
    Held,
    RetryLater,
}

#[derive(Default)]
struct Tally {
    fates: HashMap<Fate, u64>,
    reasons: HashMap<String, u64>,
    decode_errors: u64,
    bytes: u64,
}

impl Tally {
    fn reason(&mut self, reason: &str) {
        *self.reasons.entry(reason_kind(reason)).or_default() += 1;
    }
}

/// A reason without the values it quotes, so that reasons of one kind count together.
fn reason_kind(reason: &str) -> String {
    let cut = [", got", " got ", "\"", "(", " at line"]
        .iter()
        .filter_map(|stop| reason.find(stop))
        .min()
        .unwrap_or(reason.len());
    let kind: String = reason[..cut].chars().take(80).collect();
    kind.trim_end_matches([' ', ':', ',']).to_owned()
}

const STRING_FIELDS: &[&str] = &[
    "/specversion",
    "/id",
    "/source",
    "/type",
    "/tenant",
    "/time",
    "/subject",
    "/datacontenttype",
    "/data/to/email",
    "/data/to/name",
    "/data/to/locale",
    "/data/variables/note",
];

const ANY_FIELDS: &[&str] = &[
    "/specversion",
    "/id",
    "/source",
    "/type",
    "/tenant",
    "/time",
    "/subject",
    "/datacontenttype",
    "/traceparent",
    "/data",
    "/data/to",
    "/data/to/email",
    "/data/to/name",
    "/data/to/locale",
    "/data/variables",
    "/data/variables/note",
];

fn pick<T: Copy>(rng: &mut TestRng, items: &[T]) -> T {
    items[rng.random_range(0..items.len())]
}

fn alnum(rng: &mut TestRng, len: usize) -> String {
    const CHARS: &[u8] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZabcdefghijklmnopqrstuvwxyz";
    (0..len).map(|_| char::from(pick(rng, CHARS))).collect()
}

/// Any Unicode scalar value, controls, surrogates' neighbours and non-characters included.
fn any_char(rng: &mut TestRng) -> char {
    loop {
        let code = match rng.random_range(0..4) {
            0 => rng.random_range(0..0x80),
            1 => rng.random_range(0x80..0x800),
            2 => rng.random_range(0x800..0x10000),
            _ => rng.random_range(0x10000..0x110000),
        };
        if let Some(c) = char::from_u32(code) {
            return c;
        }
    }
}

fn control_char(rng: &mut TestRng) -> char {
    if rng.random_bool(0.1) { '\u{7f}' } else { char::from(rng.random_range(0u8..0x20)) }
}

/// A valid envelope, varied: its tenant, type and recipient decide which outcome it is headed
/// for (sent, suppressed, unknown tenant, no template, template error).
fn valid_envelope(rng: &mut TestRng) -> Value {
    let id_len = rng.random_range(1..40);
    let mut event = json!({
        "specversion": "1.0",
        "id": alnum(rng, id_len),
        "source": pick(rng, &["acme-invest/accounts", "https://acme.example/x?y=1#z", "a"]),
        "type": pick(rng, &["account.deposit_completed", "account.deposit_completed", "account.closed"]),
        "tenant": pick(rng, &["acme-invest", "acme-invest", "acme-bank", "acme-unknown"]),
        "data": {
            "to": {
                "email": pick(rng, &["taro.yamada@example.com", "blocked@example.com", "a+b@sub.example.org"]),
            },
        },
    });
    if rng.random_bool(0.5) {
        event["time"] = json!("2026-11-27T10:00:00Z");
    }
    if rng.random_bool(0.3) {
        event["datacontenttype"] = json!("application/json");
    }
    if rng.random_bool(0.3) {
        event["subject"] = json!("account/00042");
    }
    if rng.random_bool(0.6) {
        event["data"]["to"]["name"] = json!(pick(rng, &["山田 太郎", "Taro Yamada", ""]));
    }
    if rng.random_bool(0.6) {
        event["data"]["to"]["locale"] = json!(pick(rng, &["ja", "en-US", "zh-Hant-TW"]));
    }
    if rng.random_bool(0.8) {
        let mut variables = Map::new();
        variables.insert("amount".into(), json!(rng.random_range(0..1_000_000)));
        variables.insert("note".into(), json!("a note"));
        if rng.random_bool(0.05) {
            variables.insert("fail".into(), json!(true));
        }
        if rng.random_bool(0.05) {
            variables.insert("otp".into(), json!("123456"));
        }
        event["data"]["variables"] = Value::Object(variables);
    }
    event
}

fn set(event: &mut Value, path: &str, value: Option<Value>) {
    let (parent, member) = path.rsplit_once('/').unwrap();
    let Some(Value::Object(parent)) = event.pointer_mut(parent) else { return };
    match value {
        Some(value) => parent.insert(member.to_owned(), value),
        None => parent.remove(member),
    };
}

fn wrong_type(rng: &mut TestRng) -> Value {
    match rng.random_range(0..6) {
        0 => json!(rng.random_range(-5..5)),
        1 => json!(rng.random_bool(0.5)),
        2 => json!([]),
        3 => json!({}),
        4 => json!(1.5e300),
        _ => json!(["1.0", { "nested": null }]),
    }
}

/// A string with something hard in it: controls, NUL, any Unicode, or great length.
fn hard_string(rng: &mut TestRng, original: Option<&str>) -> String {
    let mut s = original.unwrap_or("x").to_owned();
    match rng.random_range(0..5) {
        0 => {
            let at = s.char_indices().map(|(i, _)| i).nth(rng.random_range(0..=s.chars().count()));
            s.insert(at.unwrap_or(s.len()), control_char(rng));
        }
        1 => s = (0..rng.random_range(0..30)).map(|_| any_char(rng)).collect(),
        2 => s.push_str(&"x".repeat(rng.random_range(200..5_000))),
        3 if rng.random_bool(0.02) => {
            // Rarely, past the 1 MiB limit or right at it.
            let len = MAX_EVENT_BYTES - 400 + rng.random_range(0..800);
            s = "y".repeat(len);
        }
        _ => s.push_str(
            &"\u{0}\u{7f}\u{85}\u{2028}\u{feff}\u{10ffff}".repeat(rng.random_range(1..4)),
        ),
    }
    s
}

/// One mutation of the JSON value.
fn mutate(rng: &mut TestRng, event: &mut Value) {
    match rng.random_range(0..5) {
        0 => set(event, pick(rng, ANY_FIELDS), None),
        1 => set(event, pick(rng, ANY_FIELDS), Some(wrong_type(rng))),
        2 => set(event, pick(rng, ANY_FIELDS), Some(Value::Null)),
        _ => {
            let path = pick(rng, STRING_FIELDS);
            let original = event.pointer(path).and_then(Value::as_str).map(str::to_owned);
            set(event, path, Some(Value::String(hard_string(rng, original.as_deref()))));
        }
    }
}

/// One mutation of the bytes: members given twice, truncation, flipped or random bytes.
fn mutate_bytes(rng: &mut TestRng, body: &mut Vec<u8>) {
    match rng.random_range(0..5) {
        0 if body.first() == Some(&b'{') => {
            let member = pick(
                rng,
                &[
                    r#""tenant":"acme-bank","#,
                    r#""id":"other","#,
                    r#""data":{"to":{"email":"x@example.com"}},"#,
                    r#""specversion":"1.0","#,
                ],
            );
            body.splice(1..1, member.bytes());
        }
        1 => body.truncate(rng.random_range(0..=body.len())),
        2 => {
            for _ in 0..rng.random_range(1..8) {
                if !body.is_empty() {
                    let at = rng.random_range(0..body.len());
                    body[at] = rng.random();
                }
            }
        }
        3 => {
            let len = rng.random_range(0..300);
            *body = (0..len).map(|_| rng.random()).collect();
        }
        _ => body.clear(),
    }
}

/// The next message body.
fn envelope(rng: &mut TestRng, last: &[u8]) -> Vec<u8> {
    if !last.is_empty() && rng.random_bool(0.05) {
        return last.to_vec(); // a redelivery
    }
    let mut event = valid_envelope(rng);
    let mutations = match rng.random_range(0..10) {
        0..=2 => 0,
        3..=6 => 1,
        7..=8 => 2,
        _ => rng.random_range(3..8),
    };
    for _ in 0..mutations {
        mutate(rng, &mut event);
    }
    if rng.random_bool(0.05) {
        event = json!({ "Type": "Notification", "MessageId": "m", "Message": event.to_string() });
    }
    let mut body = event.to_string().into_bytes();
    if rng.random_bool(0.1) {
        mutate_bytes(rng, &mut body);
    }
    body
}

fn fate(result: &Result<Handled, tayori_app::RetryLater>) -> (Fate, Option<&str>) {
    match result {
        Ok(Handled::Decided { outcome, .. }) => match outcome {
            Outcome::Sent { .. } => (Fate::Sent, None),
            Outcome::Suppressed { reason } => (Fate::Suppressed, Some(reason)),
            Outcome::Rejected { reason } => (Fate::Rejected, Some(reason)),
            Outcome::Failed { reason } => (Fate::Failed, Some(reason)),
            Outcome::Unknown { reason } => (Fate::Unknown, Some(reason)),
        },
        Ok(Handled::RejectedWithoutKey { reason }) => (Fate::RejectedWithoutKey, Some(reason)),
        Ok(Handled::Duplicate { .. }) => (Fate::Duplicate, None),
        Ok(Handled::Held { .. }) => (Fate::Held, None),
        Err(retry) => (Fate::RetryLater, Some(&retry.reason)),
    }
}

fn shown(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(&body[..body.len().min(400)]);
    format!("{text:?} ({} bytes)", body.len())
}

/// Runs `cases` envelopes from `seed`; panics (naming the case and its body) on the first that
/// breaks a rule. `progress` prints a line every so many envelopes.
fn run(cases: u64, seed: u64, progress: Option<u64>) -> Tally {
    let mut seed_bytes = [0u8; 32];
    seed_bytes[..8].copy_from_slice(&seed.to_le_bytes());
    let mut rng = TestRng::from_seed(RngAlgorithm::ChaCha, &seed_bytes);
    let mut tally = Tally::default();
    let mut w = world();
    let mut last = Vec::new();
    let started = Instant::now();
    for case in 0..cases {
        if case % 5_000 == 0 && case > 0 {
            w = world();
            last.clear();
        }
        let body = envelope(&mut rng, &last);
        tally.bytes += body.len() as u64;
        let handled = catch_unwind(AssertUnwindSafe(|| {
            let decoded = decode_message_body(&body);
            let result = block_on(w.handler.handle(&InboundMessage::first(body.clone())));
            (decoded.err(), result)
        }));
        let Ok((decode_error, result)) = handled else {
            panic!("case {case} (seed {seed}) panicked on {}", shown(&body));
        };
        if let Some(error) = decode_error {
            tally.decode_errors += 1;
            assert!(!error.reason.trim().is_empty(), "case {case}: no reason for {}", shown(&body));
        }
        let (fate, reason) = fate(&result);
        *tally.fates.entry(fate).or_default() += 1;
        assert_ne!(fate, Fate::RetryLater, "case {case}: {result:?} for {}", shown(&body));
        if let Some(reason) = reason {
            assert!(!reason.trim().is_empty(), "case {case}: {fate:?} without a reason");
            tally.reason(reason);
        }
        // What was decided is what the store holds, with the same reason.
        if let Ok(Handled::Decided { delivery_id, outcome }) = &result {
            let record = block_on(w.store.delivery(*delivery_id, None)).unwrap().unwrap();
            assert_eq!(record.status, outcome.status(), "case {case}");
            assert_eq!(record.reason.as_deref(), outcome.reason(), "case {case}");
        }
        last = body;
        if let Some(every) = progress
            && (case + 1) % every == 0
        {
            let elapsed = started.elapsed().as_secs_f64();
            println!(
                "fuzz: {:>9} envelopes, {:>7.0}/s, {:>6.1} s, {:.1} MiB generated",
                case + 1,
                (case + 1) as f64 / elapsed,
                elapsed,
                tally.bytes as f64 / 1_048_576.0
            );
        }
    }
    tally
}

fn report(cases: u64, seed: u64, tally: &Tally, elapsed: Duration) {
    println!("\nfuzz summary: {cases} envelopes (seed {seed}) in {:.1} s", elapsed.as_secs_f64());
    println!(
        "  {:.1} MiB of bodies; {} refused by decode",
        tally.bytes as f64 / 1_048_576.0,
        tally.decode_errors
    );
    let mut fates: Vec<_> = tally.fates.iter().collect();
    fates.sort();
    for (fate, count) in fates {
        println!("  {:<20} {count:>9}", format!("{fate:?}"));
    }
    println!("  rejection and other reasons, top 10 of {} kinds:", tally.reasons.len());
    let mut reasons: Vec<_> = tally.reasons.iter().collect();
    reasons.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
    for (reason, count) in reasons.into_iter().take(10) {
        println!("  {count:>9}  {reason}");
    }
}

/// Part of the test suite: a couple of thousand envelopes, in a second or two.
#[test]
fn generated_envelopes_each_end_in_an_outcome_with_a_reason() {
    let tally = run(2_000, 22, None);
    // The generator reaches every outcome it aims at, so the rules above were really tried.
    for fate in
        [Fate::Sent, Fate::Suppressed, Fate::Rejected, Fate::RejectedWithoutKey, Fate::Duplicate]
    {
        assert!(
            tally.fates.get(&fate).copied().unwrap_or(0) > 0,
            "no {fate:?} in {:?}",
            tally.fates
        );
    }
    assert!(tally.decode_errors > 200, "{} decode errors", tally.decode_errors);
}

/// `scripts/fuzz`: `TAYORI_FUZZ_CASES` envelopes (default 1,000,000) from `TAYORI_FUZZ_SEED`.
#[test]
#[ignore = "long: run by scripts/fuzz"]
fn fuzz_long() {
    let var = |name: &str, default: u64| {
        std::env::var(name).ok().map_or(default, |v| v.parse().expect("a number"))
    };
    let cases = var("TAYORI_FUZZ_CASES", 1_000_000);
    let seed = var("TAYORI_FUZZ_SEED", 1);
    let started = Instant::now();
    let tally = run(cases, seed, Some((cases / 20).max(1)));
    report(cases, seed, &tally, started.elapsed());
}
