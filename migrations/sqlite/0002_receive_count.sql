-- See migrations/postgres/0002_receive_count.sql.
alter table deliveries add column receive_count integer not null default 1;
