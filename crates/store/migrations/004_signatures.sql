-- Trust: each device's Ed25519 public key (server side), and signatures
-- over batches of changes, kept on both sides with the changes they cover
-- and when they arrived.
ALTER TABLE devices ADD COLUMN public_key BLOB NOT NULL DEFAULT x'';

CREATE TABLE signatures (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    visit_id     TEXT NOT NULL REFERENCES visits(id) ON DELETE CASCADE,
    signer       TEXT NOT NULL,
    hashes       BLOB NOT NULL,
    -- the same changes named by actor and sequence ranges, JSON [[actor hex, first, last], …]
    ranges       TEXT NOT NULL,
    signature    BLOB NOT NULL,
    received_at  TEXT NOT NULL
) STRICT;

CREATE TABLE signed_changes (
    visit_id      TEXT NOT NULL REFERENCES visits(id) ON DELETE CASCADE,
    hash          BLOB NOT NULL,
    signature_id  INTEGER NOT NULL REFERENCES signatures(id) ON DELETE CASCADE,
    received_at   TEXT NOT NULL,
    PRIMARY KEY (visit_id, hash)
) STRICT;
