-- Postgres twin of ../005_workers.sql (worker ids of the durable engine: the lease, the heartbeat and
-- the takeover claim). Times are UTC ISO text, compared as text: "C" collation keeps that byte order.
CREATE TABLE workers (
    id                  TEXT PRIMARY KEY,
    token               TEXT NOT NULL,
    host                TEXT NOT NULL,
    pid                 BIGINT NOT NULL,
    pid_started         TEXT,
    heartbeat_s         DOUBLE PRECISION NOT NULL,
    started_at          TEXT COLLATE "C" NOT NULL,
    heartbeat_at        TEXT COLLATE "C" NOT NULL,
    stopped_at          TEXT COLLATE "C",
    taken_over_by       TEXT,
    taken_over_at       TEXT COLLATE "C",
    takeover_done_at    TEXT COLLATE "C"
);
CREATE INDEX workers_heartbeat ON workers(heartbeat_at);
