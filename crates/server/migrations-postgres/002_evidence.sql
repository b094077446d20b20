-- Evidence files (photos) uploaded in pieces, in the database so that
-- every server process sees them.

CREATE TABLE evidence (
    visit_id   TEXT NOT NULL,
    hash       TEXT NOT NULL,
    length     BIGINT NOT NULL CHECK (length >= 0),
    received   BIGINT NOT NULL DEFAULT 0 CHECK (received >= 0 AND received <= length),
    complete   BOOLEAN NOT NULL DEFAULT false,
    created_at TEXT NOT NULL,
    PRIMARY KEY (visit_id, hash)
);

CREATE TABLE evidence_pieces (
    visit_id TEXT NOT NULL,
    hash     TEXT NOT NULL,
    at       BIGINT NOT NULL,
    data     BYTEA NOT NULL,
    PRIMARY KEY (visit_id, hash, at),
    FOREIGN KEY (visit_id, hash) REFERENCES evidence (visit_id, hash) ON DELETE CASCADE
);
