-- Builds kitefix has accepted, one row per delivery key (org, build id, finished_at).
-- Times are unix milliseconds so both backends share one representation.
CREATE TABLE builds (
    dedupe_key     TEXT    PRIMARY KEY,
    org            TEXT    NOT NULL,
    pipeline       TEXT    NOT NULL,
    build_id       TEXT    NOT NULL,
    build_number   BIGINT NOT NULL,
    finished_at    TEXT    NOT NULL,
    integration_id TEXT,
    event          TEXT    NOT NULL,          -- the verified event, JSON
    state          TEXT    NOT NULL,          -- queued | received | reported | skipped | failed | dead
    attempts       BIGINT NOT NULL DEFAULT 0,
    reason         TEXT,                      -- why the build ended in its state, for humans
    report         TEXT,                      -- BuildReport JSON, once analysed
    check_run      TEXT,                      -- the check run body posted (or, in dry-run, not posted)
    check_run_id   BIGINT,
    check_run_url  TEXT,
    queued_at      BIGINT NOT NULL,
    updated_at     BIGINT NOT NULL
);
CREATE INDEX builds_by_update ON builds (updated_at);
CREATE INDEX builds_by_build ON builds (build_id);

-- The embedded queue: one row per message, leased by a worker, deleted on ack.
CREATE TABLE queue_messages (
    id           BIGSERIAL PRIMARY KEY,
    dedupe_key   TEXT    NOT NULL UNIQUE,
    payload      TEXT    NOT NULL,
    attempts     BIGINT NOT NULL DEFAULT 0,
    run_at       BIGINT NOT NULL,            -- not delivered before this time
    leased_until BIGINT,                     -- a worker holds it until then
    lease_id     TEXT,
    last_error   TEXT,
    dead_at      BIGINT,                     -- dead-lettered: kept for inspection, never delivered
    created_at   BIGINT NOT NULL
);
CREATE INDEX queue_messages_ready ON queue_messages (dead_at, run_at);
