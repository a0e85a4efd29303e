-- One row per worker id of the durable engine (JANT_ENGINE=dbos; docs/durable-jobs.md, "Executor id,
-- recovery and takeover"). DBOS recovers a dead process's jobs only in a process with the same
-- executor id, and two live processes with one id run the same jobs twice: so the id is leased.
--
-- A process holds the lease while its heartbeat is fresh; `token` is new at every start, so a write by
-- a process that lost its lease (it stalled and another took the id over) matches nothing. When a
-- worker's heartbeat is older than a survivor's JANT_WORKER_TAKEOVER_S, one survivor claims it with a
-- conditional UPDATE (taken_over_by IS NULL) and resumes its pending workflows. Times are UTC ISO
-- text with microseconds, so comparing them as text compares the instants.
CREATE TABLE workers (
    id                  TEXT PRIMARY KEY,
    token               TEXT NOT NULL,
    host                TEXT NOT NULL,
    pid                 INTEGER NOT NULL,
    pid_started         TEXT,               -- when the OS started that pid (Linux), to tell a reused pid apart
    heartbeat_s         REAL NOT NULL,      -- how often the holder beats: its lease is live for a few beats
    started_at          TEXT NOT NULL,
    heartbeat_at        TEXT NOT NULL,
    stopped_at          TEXT,               -- a clean stop: the id is free at once
    taken_over_by       TEXT,               -- the survivor that claimed this worker's jobs
    taken_over_at       TEXT,
    takeover_done_at    TEXT                -- its jobs are resumed elsewhere: a restart with this id may go on
);
CREATE INDEX workers_heartbeat ON workers(heartbeat_at);
