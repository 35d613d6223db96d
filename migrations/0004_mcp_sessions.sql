-- Legacy MCP sessions (the `initialize` handshake), shared by every replica: a session opened
-- on one is resumed on another from its `initialize` parameters. Each belongs to the key that
-- opened it (a SHA-256 of it; `loopback` when no key is set) and, for a personal key, to its
-- person, whose revoked keys end their sessions.
CREATE TABLE mcp_sessions (
    session_id TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    user_gid TEXT,
    -- JSON: the client's `initialize` parameters (client name, capabilities; no secret).
    state TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    -- Updated coarsely (at most about once an hour), not on every request.
    seen_at BIGINT NOT NULL
);

CREATE INDEX mcp_sessions_user_gid ON mcp_sessions (user_gid);
CREATE INDEX mcp_sessions_seen_at ON mcp_sessions (seen_at);
