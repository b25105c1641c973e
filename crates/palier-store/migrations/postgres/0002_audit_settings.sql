-- The operators' audit trail, hash-chained, and service settings (secrets).

CREATE TABLE audit_log (
    seq           BIGINT PRIMARY KEY,                    -- 1, 2, 3 … with no gap
    at_unix_nanos BIGINT NOT NULL,
    actor         TEXT   NOT NULL,                       -- API key id, or cli:…
    action        TEXT   NOT NULL,
    subject       TEXT   NOT NULL,                       -- pseudonymous reference, never personal data
    detail        TEXT   NOT NULL,                       -- JSON without personal data
    prev_hash     BYTEA  NOT NULL CHECK (octet_length(prev_hash) = 32),
    hash          BYTEA  NOT NULL UNIQUE CHECK (octet_length(hash) = 32)
);

CREATE TABLE settings (
    name  TEXT PRIMARY KEY,
    value BYTEA NOT NULL
);
