-- Jobs, their per-scene stages, the predictions we paid for, and an append-only event log.
CREATE TABLE jobs (
    id              TEXT PRIMARY KEY,
    status          TEXT NOT NULL,
    request_json    TEXT NOT NULL,
    storyboard_json TEXT,
    requester_id    TEXT,
    guild_id        TEXT,
    channel_id      TEXT,
    ui_json         TEXT NOT NULL DEFAULT '{}',
    providers_json  TEXT NOT NULL DEFAULT '{}',
    offline         INTEGER NOT NULL DEFAULT 0,
    env             TEXT NOT NULL DEFAULT 'dev',
    byte_limit      INTEGER,
    error           TEXT,
    final_path      TEXT,
    final_bytes     INTEGER,
    gpu_seconds     REAL NOT NULL DEFAULT 0,
    cost_usd        REAL NOT NULL DEFAULT 0,
    created_at      TEXT NOT NULL,
    updated_at      TEXT NOT NULL,
    started_at      TEXT,
    finished_at     TEXT
);
CREATE INDEX jobs_status ON jobs(status);
CREATE INDEX jobs_requester ON jobs(requester_id, created_at);
CREATE INDEX jobs_guild ON jobs(guild_id, status);

CREATE TABLE stages (
    job_id          TEXT NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,
    scene_index     INTEGER NOT NULL,
    stage           TEXT NOT NULL,           -- seed | clip
    status          TEXT NOT NULL,
    progress        REAL NOT NULL DEFAULT 0,
    attempt         INTEGER NOT NULL DEFAULT 0,
    max_attempts    INTEGER NOT NULL DEFAULT 3,
    error           TEXT,
    path            TEXT,
    seed            INTEGER,
    prediction_id   TEXT,
    updated_at      TEXT NOT NULL,
    PRIMARY KEY (job_id, scene_index, stage)
);

CREATE TABLE scenes (
    job_id          TEXT NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,
    scene_index     INTEGER NOT NULL,
    normalized_path TEXT,
    PRIMARY KEY (job_id, scene_index)
);

-- One row per paid attempt, keyed like an idempotent workflow step.
CREATE TABLE predictions (
    job_id          TEXT NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,
    scene_index     INTEGER NOT NULL,
    stage           TEXT NOT NULL,
    attempt         INTEGER NOT NULL,
    provider        TEXT NOT NULL,
    prediction_id   TEXT NOT NULL,
    status          TEXT NOT NULL DEFAULT 'created',
    predict_time    REAL,
    created_at      TEXT NOT NULL,
    updated_at      TEXT NOT NULL,
    PRIMARY KEY (job_id, scene_index, stage, attempt)
);
CREATE INDEX predictions_id ON predictions(prediction_id);

CREATE TABLE events (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    job_id          TEXT NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,
    at              TEXT NOT NULL,
    kind            TEXT NOT NULL,
    scene_index     INTEGER,
    stage           TEXT,
    detail          TEXT
);
CREATE INDEX events_job ON events(job_id, id);
