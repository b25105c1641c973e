-- palier's event log and API keys (PostgreSQL). The version record is sqlx's _sqlx_migrations.
-- Applied once; never edit a released migration: add 0002_….sql instead.

CREATE TABLE events (
    seq                 BIGSERIAL PRIMARY KEY,             -- append order (allocation order, see lib.rs)
    id                  TEXT   NOT NULL UNIQUE,            -- the event id (idempotency key)
    program             TEXT   NOT NULL,
    member              TEXT   NOT NULL,
    order_id            TEXT,
    at_unix_nanos       BIGINT NOT NULL,
    body                TEXT   NOT NULL,                   -- the event JSON as received
    body_sha256         BYTEA  NOT NULL CHECK (octet_length(body_sha256) = 32),
    received_unix_nanos BIGINT NOT NULL
);

CREATE INDEX events_program_member_seq ON events (program, member, seq);

CREATE TABLE api_keys (
    id                   TEXT   PRIMARY KEY,
    name                 TEXT   NOT NULL,
    secret_sha256        BYTEA  NOT NULL UNIQUE CHECK (octet_length(secret_sha256) = 32),
    scopes               TEXT   NOT NULL,                  -- comma-separated
    created_unix_seconds BIGINT NOT NULL,
    revoked_unix_seconds BIGINT
);
