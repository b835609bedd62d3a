-- The scheduler's own tables: the channels it has heard of (from auth's ChannelStateChanged), schedules per
-- (channel, operation), the run registry and each run's log. Tenant and channel ids are auth's, kept as text.

-- What auth told us about each channel: the shop (run requests carry it) and whether operations may run.
CREATE TABLE channels (
    channel_id  TEXT PRIMARY KEY,
    tenant_id   TEXT NOT NULL,
    shop_domain TEXT NOT NULL DEFAULT '',
    state       TEXT NOT NULL CHECK (state IN ('UNSPECIFIED', 'CONNECTING', 'ACTIVE', 'DISCONNECTED', 'ERROR')),
    last_error  TEXT NOT NULL DEFAULT '',
    -- auth's time of the change: an older event arriving late never overwrites a newer state.
    changed_at  TIMESTAMPTZ NOT NULL
);
CREATE INDEX channels_tenant ON channels (tenant_id);

CREATE TABLE schedules (
    tenant_id        TEXT NOT NULL,
    channel_id       TEXT NOT NULL,
    operation        TEXT NOT NULL,
    enabled          BOOLEAN NOT NULL,
    -- Exactly one of: every N seconds, or a cron expression in a time zone ('' is UTC).
    interval_seconds INTEGER CHECK (interval_seconds >= 1),
    cron_expression  TEXT,
    time_zone        TEXT NOT NULL DEFAULT '',
    -- The next due time not fired yet (NULL while disabled). Firing moves it forward with a compare-and-set.
    next_due_at      TIMESTAMPTZ,
    last_fired_at    TIMESTAMPTZ,
    updated_at       TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (channel_id, operation),
    CHECK ((interval_seconds IS NULL) <> (cron_expression IS NULL))
);
CREATE INDEX schedules_due ON schedules (next_due_at) WHERE enabled;
CREATE INDEX schedules_tenant ON schedules (tenant_id, channel_id);

CREATE TABLE runs (
    run_id        UUID PRIMARY KEY,
    tenant_id     TEXT NOT NULL,
    channel_id    TEXT NOT NULL,
    operation     TEXT NOT NULL,
    trigger       TEXT NOT NULL CHECK (trigger IN ('MANUAL', 'SCHEDULED', 'CATCH_UP')),
    status        TEXT NOT NULL CHECK (status IN ('REQUESTED', 'RUNNING', 'CANCELLING', 'SUCCEEDED', 'PARTIAL',
                                                   'FAILED', 'CANCELLED', 'SKIPPED')),
    -- Scheduled and catch-up runs: the due time the run stands for.
    due_at        TIMESTAMPTZ,
    -- The replica that fired a scheduled run (operators: which leader was it).
    fired_by      TEXT,
    requested_at  TIMESTAMPTZ NOT NULL,
    started_at    TIMESTAMPTZ,
    finished_at   TIMESTAMPTZ,
    -- The highest RunProgress.seq applied; reports with a lower one are stale.
    progress_seq  BIGINT NOT NULL DEFAULT 0,
    processed     BIGINT NOT NULL DEFAULT 0,
    created       BIGINT NOT NULL DEFAULT 0,
    linked        BIGINT NOT NULL DEFAULT 0,
    updated       BIGINT NOT NULL DEFAULT 0,
    skipped       BIGINT NOT NULL DEFAULT 0,
    failed        BIGINT NOT NULL DEFAULT 0,
    total         BIGINT NOT NULL DEFAULT 0,
    stage         TEXT NOT NULL DEFAULT '',
    error         TEXT NOT NULL DEFAULT '',
    -- Log entries by level (counted when an entry is first stored).
    errors        BIGINT NOT NULL DEFAULT 0,
    warnings      BIGINT NOT NULL DEFAULT 0,
    -- Grows with every change: WatchRun sends the run again when it moved.
    version       BIGINT NOT NULL DEFAULT 0
);
-- One run per due time of a schedule, whatever the number of leaders that believe they should fire it.
CREATE UNIQUE INDEX runs_one_per_due_time ON runs (channel_id, operation, due_at) WHERE due_at IS NOT NULL;
-- Never two runs of one (channel, operation) in progress at once.
CREATE UNIQUE INDEX runs_one_in_progress ON runs (channel_id, operation)
    WHERE status IN ('REQUESTED', 'RUNNING', 'CANCELLING');
CREATE INDEX runs_by_tenant ON runs (tenant_id, requested_at DESC, run_id DESC);
CREATE INDEX runs_waiting ON runs (requested_at) WHERE status = 'REQUESTED';
CREATE INDEX runs_finished ON runs (finished_at) WHERE finished_at IS NOT NULL;

CREATE TABLE run_log (
    id                BIGSERIAL,
    run_id            UUID NOT NULL REFERENCES runs (run_id) ON DELETE CASCADE,
    -- The reporter's key: an entry reported again (redelivery, re-sent batch) is stored once.
    key               TEXT NOT NULL,
    level             SMALLINT NOT NULL CHECK (level BETWEEN 1 AND 3),
    code              TEXT NOT NULL,
    message           TEXT NOT NULL,
    entity_kind       TEXT NOT NULL DEFAULT '',
    entity_value      TEXT NOT NULL DEFAULT '',
    entity_shopify_id TEXT NOT NULL DEFAULT '',
    action            TEXT NOT NULL DEFAULT '',
    at                TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (run_id, key)
);
CREATE INDEX run_log_page ON run_log (run_id, at, id);

-- The fencing revision: the JetStream KV revision of the newest leader lease that wrote here. A fire transaction
-- raises it to its own lease's revision and fails if it is already higher, so a deposed leader that still believes
-- it leads cannot write a run after its successor has.
CREATE TABLE leader_fence (
    singleton BOOLEAN PRIMARY KEY DEFAULT TRUE CHECK (singleton),
    revision  BIGINT NOT NULL,
    replica   TEXT NOT NULL,
    at        TIMESTAMPTZ NOT NULL DEFAULT now()
);
INSERT INTO leader_fence (revision, replica) VALUES (0, '');
