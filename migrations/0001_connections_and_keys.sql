-- One schema for both engines: only TEXT and BIGINT columns, so SQLite and PostgreSQL read
-- the same rows the same way. Times are milliseconds since the Unix epoch.

-- One row per Asana user who consented.
CREATE TABLE connections (
    user_gid TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    email TEXT,
    -- connected | revoked
    status TEXT NOT NULL,
    -- Sealed with STORE_KEY when it is set.
    access_token TEXT,
    refresh_token TEXT,
    -- SHA-256 of the access token: what a refresh lease compares (sealed values differ each
    -- time they are written).
    access_token_hash TEXT,
    expires_at BIGINT NOT NULL,
    -- 1 for the connection that acts when nobody is named.
    is_default BIGINT NOT NULL DEFAULT 0,
    -- Who refreshes the tokens now, and until when: one refresh serves every replica.
    refresh_owner TEXT,
    refresh_until BIGINT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

-- Idempotency-Key claims and outcomes, per connection.
CREATE TABLE idempotency_keys (
    connection TEXT NOT NULL,
    idempotency_key TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    -- in_flight | done | unknown
    state TEXT NOT NULL,
    owner TEXT,
    lease_until BIGINT,
    status BIGINT,
    body TEXT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (connection, idempotency_key)
);

CREATE INDEX idempotency_keys_created_at ON idempotency_keys (created_at);

-- Keys seen recently: the linker's own stories (so webhook rules never act on them).
CREATE TABLE seen_events (
    event_key TEXT PRIMARY KEY,
    seen_at BIGINT NOT NULL
);

CREATE INDEX seen_events_seen_at ON seen_events (seen_at);

-- Consents started and not finished: the state (hashed) and the PKCE verifier (sealed), so a
-- consent started through one replica can finish through another.
CREATE TABLE oauth_consents (
    state_hash TEXT PRIMARY KEY,
    verifier TEXT NOT NULL,
    created_at BIGINT NOT NULL
);

-- Asana's 429 pause, per connection: one replica's 429 holds writes on every replica.
CREATE TABLE rate_limits (
    connection TEXT PRIMARY KEY,
    paused_until BIGINT NOT NULL
);

-- Webhooks this linker registered: announced by `webhooks register` (so any replica can
-- answer Asana's handshake), then their secret (sealed with STORE_KEY when it is set).
CREATE TABLE webhook_hooks (
    hook_id TEXT PRIMARY KEY,
    resource TEXT,
    target TEXT,
    webhook_gid TEXT,
    secret TEXT,
    expect_handshake_until BIGINT,
    updated_at BIGINT NOT NULL
);

-- The comments the linker posted, kept 30 days.
CREATE TABLE posted_stories (
    story_gid TEXT PRIMARY KEY,
    connection TEXT NOT NULL,
    task_gid TEXT NOT NULL,
    context_name TEXT NOT NULL,
    marker TEXT NOT NULL,
    posted_at BIGINT NOT NULL
);

CREATE INDEX posted_stories_posted_at ON posted_stories (posted_at);
