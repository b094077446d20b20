-- The server's tables on PostgreSQL: the same model as the SQLite store's
-- server side (visits as chunks with an index row, kept signatures, the
-- feed with its generations, devices, enrollment codes, settings).

CREATE TABLE visits (
    id            TEXT PRIMARY KEY,
    unit_code     TEXT NOT NULL,
    unit_name     TEXT NOT NULL,
    unit_kind     TEXT NOT NULL,
    campaign      TEXT NOT NULL,
    team          TEXT NOT NULL,
    scheduled_on  TEXT NOT NULL,
    status        TEXT NOT NULL,
    conflicts     BIGINT NOT NULL,
    tally         TEXT NOT NULL,
    heads         TEXT NOT NULL,
    updated_at    TEXT NOT NULL
);
CREATE INDEX visits_by_campaign ON visits (campaign, scheduled_on);

CREATE TABLE visit_chunks (
    seq       BIGSERIAL PRIMARY KEY,
    visit_id  TEXT NOT NULL REFERENCES visits (id) ON DELETE CASCADE,
    kind      TEXT NOT NULL CHECK (kind IN ('snapshot', 'changes')),
    data      BYTEA NOT NULL
);
CREATE INDEX visit_chunks_by_visit ON visit_chunks (visit_id, seq);

CREATE TABLE signatures (
    id           BIGSERIAL PRIMARY KEY,
    visit_id     TEXT NOT NULL REFERENCES visits (id) ON DELETE CASCADE,
    signer       TEXT NOT NULL,
    ranges       TEXT NOT NULL,
    signature    BYTEA NOT NULL,
    received_at  TEXT NOT NULL
);
CREATE INDEX signatures_by_visit ON signatures (visit_id, id);

-- One row per visit, its latest update; seq is handed out under a lock
-- held until commit, so rows become visible in seq order.
CREATE SEQUENCE feed_seq;
CREATE TABLE feed (
    seq       BIGINT PRIMARY KEY,
    visit_id  TEXT NOT NULL UNIQUE,
    team      TEXT NOT NULL,
    nonce     BIGINT NOT NULL
);
CREATE INDEX feed_by_team ON feed (team, seq);
CREATE TABLE feed_generations (
    nonce      BIGINT PRIMARY KEY,
    first_seq  BIGINT NOT NULL,
    last_seq   BIGINT NOT NULL
);

CREATE TABLE devices (
    device_id    TEXT PRIMARY KEY,
    user_id      TEXT NOT NULL,
    team         TEXT NOT NULL,
    role         TEXT NOT NULL,
    name         TEXT NOT NULL,
    token_hash   BYTEA NOT NULL UNIQUE,
    enrolled_at  TEXT NOT NULL,
    revoked_at   TEXT,
    public_key   BYTEA NOT NULL
);

CREATE TABLE enrollment_codes (
    code_hash   BYTEA PRIMARY KEY,
    user_id     TEXT NOT NULL,
    team        TEXT NOT NULL,
    role        TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    expires_at  TEXT NOT NULL,
    used_at     TEXT,
    device_id   TEXT
);

CREATE TABLE settings (
    key    TEXT PRIMARY KEY,
    value  TEXT NOT NULL
);
