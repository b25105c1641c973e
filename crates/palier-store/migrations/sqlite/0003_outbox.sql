-- Notifications (issue 6): the outbox, its deliveries per destination, the webhooks,
-- and the scanner's watermarks. Never edit a released migration: add 0004_….sql.

-- One row per notification, keyed by its stable id (a hash of program, member,
-- kind, instant and subject): deriving it again inserts nothing.
CREATE TABLE outbox (
    id                 TEXT    PRIMARY KEY NOT NULL,
    program            TEXT    NOT NULL,
    member             TEXT    NOT NULL,
    kind               TEXT    NOT NULL,
    section            TEXT    NOT NULL,                 -- service | marketing
    at_unix_nanos      INTEGER NOT NULL,                 -- when it is due (business time)
    payload            TEXT    NOT NULL,                 -- the JSON body sent, byte for byte
    created_unix_nanos INTEGER NOT NULL                  -- when it was recorded (wall clock)
);

CREATE INDEX outbox_at ON outbox (at_unix_nanos, id);
CREATE INDEX outbox_member ON outbox (program, member);

-- Delivery state of one notification to one destination (a webhook id, or 'nats').
CREATE TABLE outbox_deliveries (
    notification            TEXT    NOT NULL REFERENCES outbox (id),
    destination             TEXT    NOT NULL,
    attempts                INTEGER NOT NULL DEFAULT 0,  -- sends started
    next_attempt_unix_nanos INTEGER NOT NULL,            -- due (or leased) until then
    delivered_unix_nanos    INTEGER,                     -- set: delivered
    dead_unix_nanos         INTEGER,                     -- set: dead letter
    last_error              TEXT,
    PRIMARY KEY (notification, destination)
);

CREATE INDEX outbox_deliveries_due ON outbox_deliveries (next_attempt_unix_nanos)
    WHERE delivered_unix_nanos IS NULL AND dead_unix_nanos IS NULL;

CREATE TABLE webhooks (
    id                   TEXT    PRIMARY KEY NOT NULL,
    url                  TEXT    NOT NULL,
    secret               TEXT    NOT NULL,               -- needed in clear to sign
    kinds                TEXT    NOT NULL,               -- comma-separated; empty: every kind
    created_unix_seconds INTEGER NOT NULL,
    deleted_unix_seconds INTEGER
);

-- Per program: every notification due at or before scanned_to was derived, and so
-- were those of the members of every event up to scanned_seq.
CREATE TABLE notify_watermarks (
    program                TEXT    PRIMARY KEY NOT NULL,
    scanned_to_unix_nanos  INTEGER NOT NULL,
    scanned_seq            INTEGER NOT NULL
);
