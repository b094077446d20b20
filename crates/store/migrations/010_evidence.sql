-- Evidence (photos and other files) referenced from a visit by SHA-256.
-- On a phone: the files taken there, until the server holds them whole
-- (`uploaded`; set from the start for files received from elsewhere). On the server: the files received, possibly in part
-- (`received` < `length`) while an upload is resumed; `complete` only once
-- the bytes hash to `hash`. The bytes are kept in pieces as they arrived.
CREATE TABLE evidence (
    visit_id   TEXT NOT NULL,
    hash       TEXT NOT NULL,
    length     INTEGER NOT NULL CHECK (length >= 0),
    received   INTEGER NOT NULL DEFAULT 0 CHECK (received >= 0 AND received <= length),
    complete   INTEGER NOT NULL DEFAULT 0 CHECK (complete IN (0, 1)),
    uploaded   INTEGER NOT NULL DEFAULT 0 CHECK (uploaded IN (0, 1)),
    created_at TEXT NOT NULL,
    PRIMARY KEY (visit_id, hash)
) STRICT;

CREATE TABLE evidence_pieces (
    visit_id TEXT NOT NULL,
    hash     TEXT NOT NULL,
    at       INTEGER NOT NULL,
    data     BLOB NOT NULL,
    PRIMARY KEY (visit_id, hash, at),
    FOREIGN KEY (visit_id, hash) REFERENCES evidence (visit_id, hash) ON DELETE CASCADE
) STRICT;
