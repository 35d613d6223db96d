-- Personal API keys: only a SHA-256 of each key is kept. A key acts as its connection.
CREATE TABLE api_keys (
    key_hash TEXT PRIMARY KEY,
    user_gid TEXT NOT NULL,
    -- The key's first characters, to tell keys apart in listings (never enough to use it).
    prefix TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    -- Updated coarsely (at most about once a minute), not on every request.
    last_used_at BIGINT,
    revoked_at BIGINT
);

CREATE INDEX api_keys_user_gid ON api_keys (user_gid);

-- The workspaces each connected user belongs to (JSON: [{"gid", "name"}]), read at consent:
-- what ALLOWED_WORKSPACES is checked against.
ALTER TABLE connections ADD COLUMN workspaces TEXT;

-- Browser sessions of the home page: the cookie's id hashed, the person it belongs to, the
-- CSRF token its forms carry, and a new personal key to show once (sealed), if any.
CREATE TABLE sessions (
    id_hash TEXT PRIMARY KEY,
    user_gid TEXT NOT NULL,
    csrf TEXT NOT NULL,
    shown_key TEXT,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);

CREATE INDEX sessions_expires_at ON sessions (expires_at);

-- Keys the service makes for itself, shared by every replica: `cookie_key` seals the cookie
-- that carries a consent in progress (sealed with STORE_KEY when it is set).
CREATE TABLE secrets (
    name TEXT PRIMARY KEY,
    value TEXT NOT NULL,
    created_at BIGINT NOT NULL
);

-- Whose connection registered each webhook: its rules (tags, projects) act as that person.
ALTER TABLE webhook_hooks ADD COLUMN user_gid TEXT;
