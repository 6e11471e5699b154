//! Many writes of the event path in one transaction, with one set-based statement per kind of
//! write (`insert … select from unnest(…)`, `update … from unnest(…)`), so that a batch costs a
//! handful of statements and one commit however many writes it holds.
//!
//! Every statement here must give each write the answer it would get from its own statement in
//! `writes.rs`, as if the batch's writes ran one after another in the order they arrived:
//!
//! - claims of one key in one batch run in successive statements ("rounds"), so the second sees
//!   the first (in flight, or taken over when its `now` is past the first one's lease);
//! - a second outcome for a key gets `AlreadyDecided` with the first one's status (or the first
//!   one's error when the key was never claimed);
//! - attempt starts keep the first start time of a (key, attempt); attempt results the last;
//! - duplicates of one key are added up.
//!
//! Rows are sorted by key where the statement's order is ours to choose, so that two batches
//! lock rows in the same order. Batch statements are not kept as prepared statements
//! (`persistent(false)`): each is planned with its arrays in hand, so the planner sees how many
//! keys it joins on instead of settling on a generic plan made while the table was small.

use std::collections::hash_map::Entry;
use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgPool};
use tayori_app::ports::{Claim, ClaimRequest, RecordOutcome, StoreError};
use tayori_domain::DeliveryStatus;
use uuid::Uuid;

use crate::writes::{
    KeyColumns, OutcomeWrite, WriteAnswer, WriteRequest, count, key_columns, lease_end, lost_claim,
    outcome_not_recorded, to_i32,
};

/// Why a batch has no answers.
#[derive(Debug)]
pub(crate) enum BatchError {
    /// The transaction did not commit, so none of its writes happened: each write may be tried
    /// again on its own.
    NotApplied(sqlx::Error),
    /// The connection failed during the commit: the writes may or may not have happened.
    Unknown(sqlx::Error),
}

type Answers = Vec<Option<Result<WriteAnswer, StoreError>>>;

/// A delivery's key, status and lease end, as read back.
type CurrentRow = (String, String, String, String, Option<DateTime<Utc>>);

/// Executes the writes in one transaction and returns each write's answer, in order.
pub(crate) async fn execute_batch(
    pool: &PgPool,
    requests: &[WriteRequest],
) -> Result<Vec<Result<WriteAnswer, StoreError>>, BatchError> {
    match execute_batch_once(pool, requests, Rows::Wait).await {
        // A row another session holds (an operator's open transaction): once more, skipping
        // the rows held, so that they cost only their own writes, not the batch's.
        Err(BatchError::NotApplied(error)) if is_lock_timeout(&error) => {
            execute_batch_once(pool, requests, Rows::SkipHeld).await
        }
        done => done,
    }
}

/// How a batch treats rows other sessions hold locked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Rows {
    /// Waits for them, briefly ([`BEGIN_BATCH`]): other workers' batches hold a row for a
    /// commit's time. Costs nothing when no row is held.
    Wait,
    /// Locks the batch's rows first and leaves out the writes of those another session holds,
    /// answering them as unavailable (to be retried).
    SkipHeld,
}

/// Opens a batch's transaction with a short lock wait, in the same round trip: past it a held
/// row fails the batch (SQLSTATE 55P03) instead of stalling it for the session's
/// `lock_timeout`, and the batch is run again with [`Rows::SkipHeld`].
const BEGIN_BATCH: &str = "begin; set local lock_timeout = '200ms'";

fn is_lock_timeout(error: &sqlx::Error) -> bool {
    matches!(error, sqlx::Error::Database(db) if db.code().as_deref() == Some("55P03"))
}

async fn execute_batch_once(
    pool: &PgPool,
    requests: &[WriteRequest],
    rows: Rows,
) -> Result<Vec<Result<WriteAnswer, StoreError>>, BatchError> {
    let mut tx = pool.begin_with(BEGIN_BATCH).await.map_err(BatchError::NotApplied)?;
    let held_elsewhere = match rows {
        Rows::Wait => HashSet::new(),
        Rows::SkipHeld => lock_rows(&mut tx, requests).await.map_err(BatchError::NotApplied)?,
    };
    let mut answers: Answers = requests
        .iter()
        .map(|request| {
            is_held(&held_elsewhere, request).then(|| {
                Err(StoreError::Unavailable(
                    "the delivery's row is locked by another session".into(),
                ))
            })
        })
        .collect();
    let plan = Plan::of(requests, &held_elsewhere);
    // Any failure before the commit rolls the whole transaction back (dropping `tx` does).
    run(&mut tx, &plan, requests, &mut answers).await.map_err(BatchError::NotApplied)?;
    tx.commit().await.map_err(|error| match error {
        // The server answered: the commit failed, and the transaction is gone.
        sqlx::Error::Database(_) => BatchError::NotApplied(error),
        _ => BatchError::Unknown(error),
    })?;
    Ok(answers
        .into_iter()
        .map(|answer| {
            answer.unwrap_or_else(|| {
                Err(StoreError::Unexpected(anyhow::anyhow!("a batched write got no answer")))
            })
        })
        .collect())
}

/// Which write goes into which statement.
#[derive(Debug, Default)]
struct Plan {
    /// Claims by round: a key appears at most once per round.
    claim_rounds: Vec<Vec<usize>>,
    /// The first start of each (key, attempt); `started_also` answers the others.
    started: Vec<usize>,
    started_also: Vec<usize>,
    /// The last result of each (key, attempt); `finished_also` answers the others.
    finished: Vec<usize>,
    finished_also: Vec<usize>,
    /// The first outcome of each key, and later ones with the index of that first one.
    outcomes: Vec<usize>,
    later_outcomes: Vec<(usize, usize)>,
    /// Duplicates per key: how many, the last time, and who asked.
    duplicates: Vec<(KeyColumns, i32, DateTime<Utc>, Vec<usize>)>,
}

impl Plan {
    /// The plan of `requests`, leaving out those of the keys in `skip`.
    fn of(requests: &[WriteRequest], skip: &HashSet<KeyColumns>) -> Self {
        let mut plan = Plan::default();
        let mut claim_round_of: HashMap<KeyColumns, usize> = HashMap::new();
        let mut started: HashMap<(KeyColumns, u32), usize> = HashMap::new();
        let mut finished: HashMap<(KeyColumns, u32), usize> = HashMap::new();
        let mut outcomes: HashMap<KeyColumns, usize> = HashMap::new();
        let mut duplicates: HashMap<KeyColumns, usize> = HashMap::new();
        for (i, request) in requests.iter().enumerate() {
            if is_held(skip, request) {
                continue;
            }
            match request {
                WriteRequest::Claim(claim) | WriteRequest::ClaimToSend(claim) => {
                    let round = claim_round_of.entry(key_columns(&claim.key)).or_insert(0);
                    if plan.claim_rounds.len() <= *round {
                        plan.claim_rounds.push(Vec::new());
                    }
                    plan.claim_rounds[*round].push(i);
                    *round += 1;
                }
                WriteRequest::AttemptStarted { key, attempt, .. } => {
                    match started.entry((key_columns(key), *attempt)) {
                        Entry::Vacant(slot) => {
                            slot.insert(i);
                            plan.started.push(i);
                        }
                        Entry::Occupied(_) => plan.started_also.push(i),
                    }
                }
                WriteRequest::AttemptFinished(_)
                | WriteRequest::Outcome(_)
                | WriteRequest::AttemptFinishedAndOutcome(..) => {}
                WriteRequest::Duplicate { key, at } => match duplicates.entry(key_columns(key)) {
                    Entry::Vacant(slot) => {
                        slot.insert(plan.duplicates.len());
                        plan.duplicates.push((key_columns(key), 1, *at, vec![i]));
                    }
                    Entry::Occupied(slot) => {
                        let entry = &mut plan.duplicates[*slot.get()];
                        entry.1 += 1;
                        entry.2 = *at;
                        entry.3.push(i);
                    }
                },
            }
            // A write of both takes part in both statements; the outcome's runs later and
            // gives its answer.
            if let Some(end) = request.attempt_finished()
                && let Some(earlier) = finished.insert((key_columns(&end.key), end.attempt), i)
            {
                plan.finished_also.push(earlier);
            }
            if let Some(write) = request.outcome() {
                match outcomes.entry(key_columns(&write.key)) {
                    Entry::Vacant(slot) => {
                        slot.insert(i);
                        plan.outcomes.push(i);
                    }
                    Entry::Occupied(first) => plan.later_outcomes.push((i, *first.get())),
                }
            }
        }
        plan.finished = finished.into_values().collect();
        plan.finished.sort_unstable();
        plan
    }
}

async fn run(
    conn: &mut PgConnection,
    plan: &Plan,
    requests: &[WriteRequest],
    answers: &mut Answers,
) -> Result<(), sqlx::Error> {
    for round in &plan.claim_rounds {
        claims(conn, round, requests, answers).await?;
    }
    // First claims to send start attempt 1 (at the claim's time), in the statement that inserts
    // the other attempt starts. A start of the same (key, attempt) can only come later than the
    // claim, so the claim's row is the first one and the start changes nothing.
    let mut starts: Vec<AttemptStart> = Vec::new();
    for &i in plan.claim_rounds.iter().flatten() {
        let first =
            matches!(answers[i], Some(Ok(WriteAnswer::Claim(Claim::Claimed { attempt: 1 }))));
        if let Some((claim, true)) = requests[i].claim()
            && first
        {
            starts.push((key_columns(&claim.key), claim.key.delivery_id().as_uuid(), 1, claim.now));
        }
    }
    for &i in &plan.started {
        if let WriteRequest::AttemptStarted { key, attempt, at } = &requests[i] {
            let columns = key_columns(key);
            let attempt = to_i32(*attempt);
            if !starts.iter().any(|(k, _, a, _)| *a == attempt && *k == columns) {
                starts.push((columns, key.delivery_id().as_uuid(), attempt, *at));
            }
        }
    }
    if !starts.is_empty() {
        attempts_started(conn, starts).await?;
        for &i in plan.started.iter().chain(&plan.started_also) {
            answers[i] = Some(Ok(WriteAnswer::Done));
        }
    }
    if !plan.finished.is_empty() {
        attempts_finished(conn, &plan.finished, requests).await?;
        for &i in plan.finished.iter().chain(&plan.finished_also) {
            answers[i] = Some(Ok(WriteAnswer::Done));
        }
    }
    if !plan.outcomes.is_empty() {
        outcomes(conn, &plan.outcomes, requests, answers).await?;
        for &(later, first) in &plan.later_outcomes {
            // After the first outcome the key is decided (or was never claimed): a second one
            // changes nothing, exactly as its own statement would find.
            answers[later] = Some(match &answers[first] {
                Some(Ok(WriteAnswer::Outcome(RecordOutcome::Recorded))) => {
                    Ok(WriteAnswer::Outcome(RecordOutcome::AlreadyDecided {
                        status: outcome_status(&requests[first]),
                    }))
                }
                Some(Ok(answer)) => Ok(answer.clone()),
                Some(Err(error)) => Err(copy_error(error)),
                None => Err(StoreError::Unexpected(anyhow::anyhow!("outcome not answered"))),
            });
        }
    }
    if !plan.duplicates.is_empty() {
        duplicates(conn, &plan.duplicates).await?;
        for (_, _, _, asked) in &plan.duplicates {
            for &i in asked {
                answers[i] = Some(Ok(WriteAnswer::Done));
            }
        }
    }
    Ok(())
}

/// One round of claims (distinct keys): the same decision as `writes::claim`, for all of them
/// in one statement, then one read for the keys that were not won.
async fn claims(
    conn: &mut PgConnection,
    round: &[usize],
    requests: &[WriteRequest],
    answers: &mut Answers,
) -> Result<(), sqlx::Error> {
    let claims: Vec<(usize, &ClaimRequest)> =
        round.iter().filter_map(|&i| requests[i].claim().map(|(claim, _)| (i, claim))).collect();
    let mut columns = ClaimColumns::default();
    for (_, claim) in &claims {
        columns.push(claim);
    }
    let won: Vec<(String, String, String, i32)> = sqlx::query_as(
        "insert into deliveries (tenant_id, source, event_id, delivery_id, event_type, \
             recipient, status, claim_count, lease_owner, lease_expires_at, event_json, \
             raw_body, raw_body_size, created_at, updated_at, receive_count) \
         select tenant_id, source, event_id, delivery_id, event_type, recipient, 'processing', \
             1, lease_owner, lease_expires_at, event_json, raw_body, raw_body_size, claimed_at, \
             claimed_at, receive_count \
         from unnest($1::text[], $2::text[], $3::text[], $4::uuid[], $5::text[], $6::text[], \
             $7::text[], $8::timestamptz[], $9::text[], $10::bytea[], $11::int4[], \
             $12::timestamptz[], $13::int4[]) \
             as c(tenant_id, source, event_id, delivery_id, event_type, recipient, lease_owner, \
                  lease_expires_at, event_json, raw_body, raw_body_size, claimed_at, \
                  receive_count) \
         order by tenant_id, source, event_id \
         on conflict (tenant_id, source, event_id) do update \
             set claim_count = deliveries.claim_count + 1, \
                 lease_owner = excluded.lease_owner, \
                 lease_expires_at = excluded.lease_expires_at, \
                 updated_at = excluded.updated_at, \
                 receive_count = excluded.receive_count \
             where deliveries.status = 'processing' \
               and deliveries.lease_expires_at <= excluded.updated_at \
         returning tenant_id, source, event_id, claim_count",
    )
    .persistent(false)
    .bind(columns.tenants)
    .bind(columns.sources)
    .bind(columns.event_ids)
    .bind(columns.delivery_ids)
    .bind(columns.event_types)
    .bind(columns.recipients)
    .bind(columns.owners)
    .bind(columns.lease_ends)
    .bind(columns.event_jsons)
    .bind(columns.raw_bodies)
    .bind(columns.raw_body_sizes)
    .bind(columns.nows)
    .bind(columns.receive_counts)
    .fetch_all(&mut *conn)
    .await?;
    let won: HashMap<KeyColumns, i32> = won
        .into_iter()
        .map(|(tenant, source, id, attempt)| ((tenant, source, id), attempt))
        .collect();

    let mut lost = Vec::new();
    for (i, claim) in &claims {
        match won.get(&key_columns(&claim.key)) {
            Some(attempt) => {
                answers[*i] =
                    Some(Ok(WriteAnswer::Claim(Claim::Claimed { attempt: count(*attempt) })));
            }
            None => lost.push((*i, *claim)),
        }
    }
    if lost.is_empty() {
        return Ok(());
    }
    // The rows of lost claims are locked by this transaction (an `on conflict do update`
    // locks the row it conflicts with, whether or not its `where` holds): what is read here
    // is what made the claim lose.
    let keys: Vec<KeyColumns> = lost.iter().map(|(_, claim)| key_columns(&claim.key)).collect();
    let current: HashMap<KeyColumns, (String, Option<DateTime<Utc>>)> =
        current_rows(conn, &keys).await?;
    for (i, claim) in lost {
        answers[i] = Some(match current.get(&key_columns(&claim.key)) {
            Some((status, lease_expires_at)) => {
                lost_claim(status, *lease_expires_at, claim.now).map(WriteAnswer::Claim)
            }
            None => Err(StoreError::Unexpected(anyhow::anyhow!(
                "a claim of {} neither won nor found the row",
                claim.key
            ))),
        });
    }
    Ok(())
}

/// Whether `request`'s key is among `held`; without a held row (nearly always) no key is built.
fn is_held(held: &HashSet<KeyColumns>, request: &WriteRequest) -> bool {
    !held.is_empty() && held.contains(&key_columns(request.key()))
}

/// Locks the existing deliveries rows of the batch's keys, in key order, and returns the keys
/// whose row another transaction holds (skipped, not waited for). Rows inserted meanwhile by
/// another batch are not seen here; their rare conflict is the batch's usual failure and replay.
async fn lock_rows(
    conn: &mut PgConnection,
    requests: &[WriteRequest],
) -> Result<HashSet<KeyColumns>, sqlx::Error> {
    let keys: Vec<KeyColumns> = requests.iter().map(|r| key_columns(r.key())).collect();
    let (tenants, sources, ids) = split_keys(&keys);
    let held: Vec<KeyColumns> = sqlx::query_as(
        "with wanted as ( \
             select distinct * from unnest($1::text[], $2::text[], $3::text[]) \
                 as k(tenant_id, source, event_id)), \
         mine as ( \
             select d.tenant_id, d.source, d.event_id from deliveries d join wanted k \
                 on d.tenant_id = k.tenant_id and d.source = k.source \
                 and d.event_id = k.event_id \
             order by d.tenant_id, d.source, d.event_id \
             for update of d skip locked) \
         select d.tenant_id, d.source, d.event_id from deliveries d join wanted k \
             on d.tenant_id = k.tenant_id and d.source = k.source and d.event_id = k.event_id \
         except all select * from mine",
    )
    .persistent(false)
    .bind(tenants)
    .bind(sources)
    .bind(ids)
    .fetch_all(&mut *conn)
    .await?;
    Ok(held.into_iter().collect())
}

/// Status and lease of these keys' deliveries.
async fn current_rows(
    conn: &mut PgConnection,
    keys: &[KeyColumns],
) -> Result<HashMap<KeyColumns, (String, Option<DateTime<Utc>>)>, sqlx::Error> {
    let (tenants, sources, ids) = split_keys(keys);
    let rows: Vec<CurrentRow> = sqlx::query_as(
        "select d.tenant_id, d.source, d.event_id, d.status, d.lease_expires_at \
         from unnest($1::text[], $2::text[], $3::text[]) as k(tenant_id, source, event_id) \
         join deliveries d \
             on d.tenant_id = k.tenant_id and d.source = k.source and d.event_id = k.event_id",
    )
    .persistent(false)
    .bind(tenants)
    .bind(sources)
    .bind(ids)
    .fetch_all(&mut *conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(tenant, source, id, status, lease)| ((tenant, source, id), (status, lease)))
        .collect())
}

fn split_keys(keys: &[KeyColumns]) -> (Vec<String>, Vec<String>, Vec<String>) {
    let mut columns = (Vec::new(), Vec::new(), Vec::new());
    for (tenant, source, id) in keys {
        columns.0.push(tenant.clone());
        columns.1.push(source.clone());
        columns.2.push(id.clone());
    }
    columns
}

/// The claim requests of a round as columns, for `unnest`.
#[derive(Default)]
struct ClaimColumns {
    tenants: Vec<String>,
    sources: Vec<String>,
    event_ids: Vec<String>,
    delivery_ids: Vec<Uuid>,
    event_types: Vec<Option<String>>,
    recipients: Vec<Option<String>>,
    owners: Vec<String>,
    lease_ends: Vec<DateTime<Utc>>,
    event_jsons: Vec<Option<String>>,
    raw_bodies: Vec<Option<Vec<u8>>>,
    raw_body_sizes: Vec<Option<i32>>,
    nows: Vec<DateTime<Utc>>,
    receive_counts: Vec<i32>,
}

impl ClaimColumns {
    fn push(&mut self, request: &ClaimRequest) {
        let key = &request.key;
        self.tenants.push(key.tenant.to_string());
        self.sources.push(key.source.to_string());
        self.event_ids.push(key.id.to_string());
        self.delivery_ids.push(key.delivery_id().as_uuid());
        self.event_types.push(request.event_type.as_ref().map(ToString::to_string));
        self.recipients.push(request.recipient.as_ref().map(ToString::to_string));
        self.owners.push(request.owner.clone());
        self.lease_ends.push(lease_end(request));
        self.event_jsons.push(request.event_json.clone());
        self.raw_bodies.push(request.raw_body.as_ref().map(|r| r.kept.clone()));
        self.raw_body_sizes.push(
            request.raw_body.as_ref().map(|r| i32::try_from(r.original_len).unwrap_or(i32::MAX)),
        );
        self.nows.push(request.now);
        self.receive_counts.push(to_i32(request.receive_count));
    }
}

/// A send attempt to insert: its delivery's key and id, its number, when it started.
type AttemptStart = (KeyColumns, Uuid, i32, DateTime<Utc>);

async fn attempts_started(
    conn: &mut PgConnection,
    starts: Vec<AttemptStart>,
) -> Result<(), sqlx::Error> {
    let (mut tenants, mut delivery_ids, mut attempts, mut started) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for ((tenant, _, _), delivery_id, attempt, at) in starts {
        tenants.push(tenant);
        delivery_ids.push(delivery_id);
        attempts.push(attempt);
        started.push(at);
    }
    // A retried call after a lost answer finds its own row: keep the first start time.
    sqlx::query(
        "insert into delivery_attempts (tenant_id, delivery_id, attempt, started_at) \
         select tenant_id, delivery_id, attempt, started_at \
         from unnest($1::text[], $2::uuid[], $3::int4[], $4::timestamptz[]) \
             as a(tenant_id, delivery_id, attempt, started_at) \
         order by delivery_id, attempt \
         on conflict do nothing",
    )
    .persistent(false)
    .bind(tenants)
    .bind(delivery_ids)
    .bind(attempts)
    .bind(started)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

async fn attempts_finished(
    conn: &mut PgConnection,
    indexes: &[usize],
    requests: &[WriteRequest],
) -> Result<(), sqlx::Error> {
    let mut columns = (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for &i in indexes {
        if let Some(end) = requests[i].attempt_finished() {
            columns.0.push(end.key.tenant.to_string());
            columns.1.push(end.key.delivery_id().as_uuid());
            columns.2.push(to_i32(end.attempt));
            columns.3.push(end.at);
            columns.4.push(end.result.as_str().to_owned());
            columns.5.push(end.detail.clone());
        }
    }
    sqlx::query(
        "update delivery_attempts a \
         set finished_at = f.finished_at, result = f.result, detail = f.detail \
         from unnest($1::text[], $2::uuid[], $3::int4[], $4::timestamptz[], $5::text[], \
             $6::text[]) as f(tenant_id, delivery_id, attempt, finished_at, result, detail) \
         where a.tenant_id = f.tenant_id and a.delivery_id = f.delivery_id \
           and a.attempt = f.attempt",
    )
    .persistent(false)
    .bind(columns.0)
    .bind(columns.1)
    .bind(columns.2)
    .bind(columns.3)
    .bind(columns.4)
    .bind(columns.5)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// The first outcome of each key: the same update as `writes::record_outcome`, then one read
/// for the keys it did not change.
async fn outcomes(
    conn: &mut PgConnection,
    indexes: &[usize],
    requests: &[WriteRequest],
    answers: &mut Answers,
) -> Result<(), sqlx::Error> {
    let mut keys = Vec::new();
    let mut columns = (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for &i in indexes {
        if let Some(write) = requests[i].outcome() {
            keys.push(key_columns(&write.key));
            columns.0.push(write.outcome.status().as_str().to_owned());
            columns.1.push(write.outcome.reason().map(str::to_owned));
            columns.2.push(write.outcome.provider_message_id().map(str::to_owned));
            columns.3.push(write.subject.as_ref().map(|s| s.as_str().to_owned()));
            columns.4.push(write.at);
        }
    }
    let (tenants, sources, ids) = split_keys(&keys);
    let updated: Vec<(String, String, String)> = sqlx::query_as(
        "update deliveries d \
         set status = o.status, reason = o.reason, provider_message_id = o.provider_message_id, \
             subject = coalesce(o.subject, d.subject), lease_owner = null, \
             lease_expires_at = null, decided_at = o.decided_at, updated_at = o.decided_at \
         from unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], \
             $7::text[], $8::timestamptz[]) \
             as o(tenant_id, source, event_id, status, reason, provider_message_id, subject, \
                  decided_at) \
         where d.tenant_id = o.tenant_id and d.source = o.source and d.event_id = o.event_id \
           and d.status = 'processing' \
         returning d.tenant_id, d.source, d.event_id",
    )
    .persistent(false)
    .bind(tenants)
    .bind(sources)
    .bind(ids)
    .bind(columns.0)
    .bind(columns.1)
    .bind(columns.2)
    .bind(columns.3)
    .bind(columns.4)
    .fetch_all(&mut *conn)
    .await?;
    let updated: std::collections::HashSet<KeyColumns> = updated.into_iter().collect();

    let mut unchanged = Vec::new();
    for (&i, key) in indexes.iter().zip(&keys) {
        if updated.contains(key) {
            answers[i] = Some(Ok(WriteAnswer::Outcome(RecordOutcome::Recorded)));
        } else {
            unchanged.push((i, key.clone()));
        }
    }
    if unchanged.is_empty() {
        return Ok(());
    }
    let unchanged_keys: Vec<KeyColumns> = unchanged.iter().map(|(_, key)| key.clone()).collect();
    let current = current_rows(conn, &unchanged_keys).await?;
    for (i, key) in unchanged {
        let Some(OutcomeWrite { key: idempotency_key, .. }) = requests[i].outcome() else {
            continue;
        };
        let status = current.get(&key).map(|(status, _)| status.as_str());
        answers[i] = Some(outcome_not_recorded(idempotency_key, status).map(WriteAnswer::Outcome));
    }
    Ok(())
}

async fn duplicates(
    conn: &mut PgConnection,
    duplicates: &[(KeyColumns, i32, DateTime<Utc>, Vec<usize>)],
) -> Result<(), sqlx::Error> {
    let mut sorted: Vec<_> = duplicates.iter().collect();
    sorted.sort_by(|a, b| a.0.cmp(&b.0));
    let keys: Vec<KeyColumns> = sorted.iter().map(|d| d.0.clone()).collect();
    let (tenants, sources, ids) = split_keys(&keys);
    let arrivals: Vec<i32> = sorted.iter().map(|d| d.1).collect();
    let last: Vec<DateTime<Utc>> = sorted.iter().map(|d| d.2).collect();
    sqlx::query(
        "update deliveries d \
         set duplicate_count = d.duplicate_count + u.arrivals, updated_at = u.last_at \
         from unnest($1::text[], $2::text[], $3::text[], $4::int4[], $5::timestamptz[]) \
             as u(tenant_id, source, event_id, arrivals, last_at) \
         where d.tenant_id = u.tenant_id and d.source = u.source and d.event_id = u.event_id",
    )
    .persistent(false)
    .bind(tenants)
    .bind(sources)
    .bind(ids)
    .bind(arrivals)
    .bind(last)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

fn outcome_status(request: &WriteRequest) -> DeliveryStatus {
    // Only outcomes are passed here.
    request.outcome().map_or(DeliveryStatus::Processing, |write| write.outcome.status())
}

/// The same error again, for a second caller (`StoreError` is not `Clone`).
pub(crate) fn copy_error(error: &StoreError) -> StoreError {
    match error {
        StoreError::Unavailable(message) => StoreError::Unavailable(message.clone()),
        StoreError::Refused(message) => StoreError::Refused(message.clone()),
        StoreError::Unexpected(error) => StoreError::Unexpected(anyhow::anyhow!("{error:#}")),
    }
}

// Batches are built by hand here, so that what shares a transaction is certain rather than a
// matter of timing; the public API's batching is tested in `tests/group_commit.rs`.
#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use std::time::Duration;

    use chrono::TimeZone;
    use tayori_app::ports::{AttemptResult, DeliveryStore};
    use tayori_domain::{EventId, EventSource, IdempotencyKey, Outcome, TenantId};

    use super::*;
    use crate::PostgresStore;
    use crate::writes::{AttemptFinishedWrite, execute_one};

    fn at(seconds: i64) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 27, 10, 0, 0).single().unwrap()
            + chrono::Duration::seconds(seconds)
    }

    fn key(id: &str) -> IdempotencyKey {
        IdempotencyKey::new(
            TenantId::parse("acme-invest").unwrap(),
            EventSource::parse("acme/accounts").unwrap(),
            EventId::parse(id).unwrap(),
        )
    }

    fn claim(id: &str, owner: &str, now: DateTime<Utc>) -> WriteRequest {
        WriteRequest::Claim(ClaimRequest {
            key: key(id),
            event_type: None,
            recipient: None,
            event_json: Some("{}".into()),
            raw_body: None,
            owner: owner.into(),
            receive_count: 1,
            lease: Duration::from_secs(60),
            now,
        })
    }

    fn outcome_write(id: &str, outcome: Outcome, at: DateTime<Utc>) -> OutcomeWrite {
        OutcomeWrite { key: key(id), outcome, subject: None, at }
    }

    fn outcome(id: &str, outcome: Outcome, at: DateTime<Utc>) -> WriteRequest {
        WriteRequest::Outcome(outcome_write(id, outcome, at))
    }

    fn finished_write(
        id: &str,
        attempt: u32,
        result: AttemptResult,
        detail: &str,
        at: DateTime<Utc>,
    ) -> AttemptFinishedWrite {
        AttemptFinishedWrite { key: key(id), attempt, result, detail: detail.into(), at }
    }

    fn finished(
        id: &str,
        attempt: u32,
        result: AttemptResult,
        detail: &str,
        at: DateTime<Utc>,
    ) -> WriteRequest {
        WriteRequest::AttemptFinished(finished_write(id, attempt, result, detail, at))
    }

    fn sent(id: &str) -> Outcome {
        Outcome::Sent { provider_message_id: id.into() }
    }

    async fn pool() -> PgPool {
        let config = crate::testing::fresh_database().await;
        PgPool::connect(&config.url).await.unwrap()
    }

    async fn batch(pool: &PgPool, requests: &[WriteRequest]) -> Vec<Result<WriteAnswer, String>> {
        let answers = execute_batch(pool, requests).await.expect("the batch commits");
        answers.into_iter().map(|a| a.map_err(|e| e.to_string())).collect()
    }

    fn claimed(attempt: u32) -> Result<WriteAnswer, String> {
        Ok(WriteAnswer::Claim(Claim::Claimed { attempt }))
    }

    /// Writes of one key in one batch get the answers they would get one after another.
    #[tokio::test]
    async fn writes_of_one_key_in_one_batch_are_answered_in_order() {
        let pool = pool().await;
        let store = PostgresStore::from_pool(pool.clone());
        let answers = batch(
            &pool,
            &[
                claim("k", "w1", at(0)),
                claim("k", "w2", at(10)),
                claim("k", "w3", at(60)), // the first lease has ended: taken over
                claim("other", "w1", at(0)),
            ],
        )
        .await;
        assert_eq!(
            answers,
            vec![
                claimed(1),
                Ok(WriteAnswer::Claim(Claim::InFlight { lease_expires_at: at(60) })),
                claimed(2),
                claimed(1),
            ]
        );
        let record = store.delivery(key("k").delivery_id(), None).await.unwrap().unwrap();
        assert_eq!(record.claim_count, 2);
        assert_eq!(record.lease_expires_at, Some(at(120)));

        let answers = batch(
            &pool,
            &[
                WriteRequest::AttemptStarted { key: key("k"), attempt: 2, at: at(61) },
                WriteRequest::AttemptStarted { key: key("k"), attempt: 2, at: at(62) },
                finished(
                    "other",
                    1,
                    AttemptResult::Accepted,
                    "no such attempt: changes nothing",
                    at(61),
                ),
                outcome("k", sent("ses-1"), at(63)),
                outcome("k", Outcome::Failed { reason: "late".into() }, at(64)),
                outcome("never-claimed", sent("ses-2"), at(63)),
                claim("k", "w4", at(500)), // claims run first: still processing, lease ended
            ],
        )
        .await;
        assert_eq!(answers[0], Ok(WriteAnswer::Done));
        assert_eq!(answers[1], Ok(WriteAnswer::Done));
        assert_eq!(answers[2], Ok(WriteAnswer::Done));
        assert_eq!(
            answers[4],
            Ok(WriteAnswer::Outcome(RecordOutcome::AlreadyDecided {
                status: DeliveryStatus::Sent
            }))
        );
        assert!(answers[5].as_ref().unwrap_err().contains("needs a claim first"), "{answers:?}");
        assert_eq!(answers[6], claimed(3));
        // The claim (first in the transaction) took the key over, so the outcome of the lease
        // it replaced still lands: the store cannot tell leases apart, today or batched.
        assert_eq!(answers[3], Ok(WriteAnswer::Outcome(RecordOutcome::Recorded)));
        let attempts = store.attempts(&key("k").tenant, key("k").delivery_id()).await.unwrap();
        assert_eq!(attempts.len(), 1);
        assert_eq!(attempts[0].started_at, at(61), "the first start time is kept");

        let answers = batch(
            &pool,
            &[
                finished("k", 2, AttemptResult::Unknown, "first", at(70)),
                finished("k", 2, AttemptResult::Accepted, "ses-1", at(71)),
                WriteRequest::Duplicate { key: key("k"), at: at(80) },
                WriteRequest::Duplicate { key: key("k"), at: at(81) },
                WriteRequest::Duplicate { key: key("other"), at: at(82) },
                claim("k", "w5", at(900)),
            ],
        )
        .await;
        assert!(answers[..5].iter().all(|a| *a == Ok(WriteAnswer::Done)), "{answers:?}");
        assert_eq!(
            answers[5],
            Ok(WriteAnswer::Claim(Claim::AlreadyDecided { status: DeliveryStatus::Sent }))
        );
        let attempts = store.attempts(&key("k").tenant, key("k").delivery_id()).await.unwrap();
        assert_eq!(attempts[0].result, Some(AttemptResult::Accepted), "the last result is kept");
        assert_eq!(attempts[0].finished_at, Some(at(71)));
        let record = store.delivery(key("k").delivery_id(), None).await.unwrap().unwrap();
        assert_eq!(record.duplicate_count, 2);
        assert_eq!(record.updated_at, at(81));
        let other = store.delivery(key("other").delivery_id(), None).await.unwrap().unwrap();
        assert_eq!(other.duplicate_count, 1);
    }

    /// Claims to send in one batch: each first claim gets its attempt 1 (at its own time); a
    /// lost claim, a takeover and a plain claim get none. The same writes one at a time
    /// (`execute_one`, a batch of one) give the same answers and rows.
    #[tokio::test]
    async fn claims_to_send_start_attempt_one_for_first_claims_only() {
        let to_send = |request: WriteRequest| match request {
            WriteRequest::Claim(claim) => WriteRequest::ClaimToSend(claim),
            other => other,
        };
        let requests = [
            to_send(claim("a", "w1", at(1))),
            to_send(claim("a", "w2", at(2))),  // in flight
            to_send(claim("a", "w3", at(61))), // taken over: no attempt 2
            to_send(claim("b", "w1", at(3))),
            claim("c", "w1", at(4)), // a plain claim
            WriteRequest::AttemptStarted { key: key("b"), attempt: 1, at: at(9) },
        ];
        let expected = vec![
            claimed(1),
            Ok(WriteAnswer::Claim(Claim::InFlight { lease_expires_at: at(61) })),
            claimed(2),
            claimed(1),
            claimed(1),
            Ok(WriteAnswer::Done),
        ];
        for batched in [true, false] {
            let pool = pool().await;
            let store = PostgresStore::from_pool(pool.clone());
            let answers = if batched {
                batch(&pool, &requests).await
            } else {
                let mut answers = Vec::new();
                for request in &requests {
                    answers.push(execute_one(&pool, request).await.map_err(|e| e.to_string()));
                }
                answers
            };
            assert_eq!(answers, expected, "batched: {batched}");
            for (id, starts) in [("a", vec![(1, at(1))]), ("b", vec![(1, at(3))]), ("c", vec![])] {
                let attempts =
                    store.attempts(&key(id).tenant, key(id).delivery_id()).await.unwrap();
                let found: Vec<_> = attempts.iter().map(|a| (a.attempt, a.started_at)).collect();
                assert_eq!(found, starts, "{id}, batched: {batched}");
            }
        }
    }

    /// A send's result and its outcome written as one: both statements see it, the answer is
    /// the outcome's, and a second outcome for the key in the same batch finds it decided.
    #[tokio::test]
    async fn a_result_with_its_outcome_lands_both_and_answers_as_the_outcome() {
        let pool = pool().await;
        let store = PostgresStore::from_pool(pool.clone());
        let both = |id: &str, result, detail: &str, decided: Outcome, seconds| {
            WriteRequest::AttemptFinishedAndOutcome(
                finished_write(id, 1, result, detail, at(seconds)),
                outcome_write(id, decided, at(seconds)),
            )
        };
        batch(&pool, &[claim("a", "w1", at(0)), claim("b", "w1", at(0))]).await;
        batch(
            &pool,
            &[
                WriteRequest::AttemptStarted { key: key("a"), attempt: 1, at: at(1) },
                WriteRequest::AttemptStarted { key: key("b"), attempt: 1, at: at(1) },
            ],
        )
        .await;
        let refused = Outcome::Failed { reason: "554 refused".into() };
        let answers = batch(
            &pool,
            &[
                both("a", AttemptResult::Accepted, "ses-a", sent("ses-a"), 2),
                both("b", AttemptResult::PermanentError, "554 refused", refused, 3),
                outcome("a", Outcome::Failed { reason: "late".into() }, at(4)),
                both("never-claimed", AttemptResult::Accepted, "x", sent("x"), 5),
            ],
        )
        .await;
        let recorded = Ok(WriteAnswer::Outcome(RecordOutcome::Recorded));
        assert_eq!(answers[0], recorded);
        assert_eq!(answers[1], recorded);
        assert_eq!(
            answers[2],
            Ok(WriteAnswer::Outcome(RecordOutcome::AlreadyDecided {
                status: DeliveryStatus::Sent
            }))
        );
        assert!(answers[3].as_ref().unwrap_err().contains("needs a claim first"), "{answers:?}");
        for (id, status, result, detail) in [
            ("a", DeliveryStatus::Sent, AttemptResult::Accepted, "ses-a"),
            ("b", DeliveryStatus::Failed, AttemptResult::PermanentError, "554 refused"),
        ] {
            let record = store.delivery(key(id).delivery_id(), None).await.unwrap().unwrap();
            assert_eq!(record.status, status, "{id}");
            let attempts = store.attempts(&key(id).tenant, key(id).delivery_id()).await.unwrap();
            assert_eq!(attempts[0].result, Some(result), "{id}");
            assert_eq!(attempts[0].detail.as_deref(), Some(detail), "{id}");
        }
        let record = store.delivery(key("a").delivery_id(), None).await.unwrap().unwrap();
        assert_eq!(record.provider_message_id.as_deref(), Some("ses-a"));
    }

    /// A write the database refuses fails the whole transaction: nothing of the batch is
    /// applied, and the caller learns it must not count on any of it.
    #[tokio::test]
    async fn a_refused_write_leaves_nothing_of_its_batch_behind() {
        let pool = pool().await;
        let store = PostgresStore::from_pool(pool.clone());
        let requests = [
            claim("good", "w1", at(0)),
            // No delivery "unclaimed": the attempt row's foreign key refuses it.
            WriteRequest::AttemptStarted { key: key("unclaimed"), attempt: 1, at: at(0) },
        ];
        match execute_batch(&pool, &requests).await {
            Err(BatchError::NotApplied(sqlx::Error::Database(db))) => {
                assert_eq!(db.code().as_deref(), Some("23503"), "{db}");
            }
            other => panic!("expected a refused batch, got {other:?}"),
        }
        assert!(store.delivery(key("good").delivery_id(), None).await.unwrap().is_none());
    }
}
