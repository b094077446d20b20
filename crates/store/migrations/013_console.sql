-- The web console's accounts and sessions. A password is kept only as its
-- argon2id hash (a PHC string); a session only as the SHA-256 of the
-- cookie that carries it, with the token its forms must echo (CSRF).
CREATE TABLE console_accounts (
    user_id      TEXT PRIMARY KEY,
    password     TEXT NOT NULL,
    failed       INTEGER NOT NULL DEFAULT 0,
    locked_until TEXT,
    set_at       TEXT NOT NULL
);
CREATE TABLE console_sessions (
    token_hash BLOB PRIMARY KEY,
    user_id    TEXT NOT NULL,
    csrf       TEXT NOT NULL,
    created_at TEXT NOT NULL,
    expires_at TEXT NOT NULL
);
CREATE INDEX console_sessions_by_user ON console_sessions (user_id);
