-- What each running `tayori worker` says its tenants are doing (slots in use and allowed,
-- messages waiting for a slot, hand-backs, send rate), replaced by every publication (every few
-- seconds), withdrawn when the worker stops, for the console's Tenants page, which adds up the
-- rows published lately. Rows of workers unheard of for an hour are deleted by publications.
-- A new table: nothing older reads or locks it.
create table worker_activity (
    worker       text             not null,
    tenant       text             not null,
    in_flight    bigint           not null,
    waiting      bigint           not null,
    slots        bigint           not null,
    send_rate    double precision not null,
    hand_backs   bigint           not null,
    published_at timestamptz      not null,
    primary key (worker, tenant)
);
