-- palier's event log and API keys (SQLite). The version record is sqlx's _sqlx_migrations.
-- Applied once; never edit a released migration: add 0002_….sql instead.

CREATE TABLE events (
    seq                 INTEGER PRIMARY KEY AUTOINCREMENT, -- append order, never reused
    id                  TEXT    NOT NULL UNIQUE,           -- the event id (idempotency key)
    program             TEXT    NOT NULL,
    member              TEXT    NOT NULL,
    order_id            TEXT,
    at_unix_nanos       INTEGER NOT NULL,
    body                TEXT    NOT NULL,                  -- the event JSON as received
    body_sha256         BLOB    NOT NULL CHECK (length(body_sha256) = 32),
    received_unix_nanos INTEGER NOT NULL
);

CREATE INDEX events_program_member_seq ON events (program, member, seq);

CREATE TABLE api_keys (
    id                   TEXT    PRIMARY KEY NOT NULL,
    name                 TEXT    NOT NULL,
    secret_sha256        BLOB    NOT NULL UNIQUE CHECK (length(secret_sha256) = 32),
    scopes               TEXT    NOT NULL,                 -- comma-separated
    created_unix_seconds INTEGER NOT NULL,
    revoked_unix_seconds INTEGER
);
