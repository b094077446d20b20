-- The administration log (kiemtra-admin): one row per entry, its bytes as
-- hashed and signed. Entries are only ever appended.
CREATE TABLE admin_log (
    seq   BIGINT PRIMARY KEY,
    entry BYTEA NOT NULL
);
