-- The console's sessions. The browser holds a random session id; only its SHA-256 is kept, so a
-- copy of this table signs nobody in. A session belongs to the token that signed it in and goes
-- with it.
create table console_sessions (
    session_sha256 text        primary key,
    token_id       uuid        not null references admin_tokens (token_id) on delete cascade,
    created_at     timestamptz not null,
    last_seen_at   timestamptz not null
);
-- The pruning at sign-in finds idle and old sessions by these.
create index console_sessions_last_seen on console_sessions (last_seen_at);
create index console_sessions_created on console_sessions (created_at);
create index console_sessions_token on console_sessions (token_id);
