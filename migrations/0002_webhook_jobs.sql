-- Webhook events accepted and not yet handled, then handled (kept 24 h, so a redelivery to
-- any replica is one insert that does nothing). Workers on any replica claim queued rows
-- under a lease; a replica killed mid-job leaves its row to be taken over once the lease and
-- the Asana timeout have passed.
CREATE TABLE webhook_jobs (
    -- The event's identity: the unique key every delivery of it shares.
    event_id TEXT PRIMARY KEY,
    -- The hook it came through (and so, later, whose connection it acts for).
    hook_id TEXT NOT NULL,
    -- The event as JSON; dropped once handled.
    event TEXT,
    -- queued | done
    state TEXT NOT NULL,
    owner TEXT,
    lease_until BIGINT NOT NULL DEFAULT 0,
    -- Claims so far: more than one means an earlier worker died mid-job.
    attempts BIGINT NOT NULL DEFAULT 0,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

CREATE INDEX webhook_jobs_state ON webhook_jobs (state, lease_until);
CREATE INDEX webhook_jobs_created_at ON webhook_jobs (created_at);
