-- Postgres twin of ../004_spend_caps.sql. Two approvals racing for a server's last dollars are kept
-- apart by a per-server advisory lock in `storage.spend_ledger`, not by anything in the schema.
ALTER TABLE predictions ADD COLUMN cost_usd DOUBLE PRECISION;

CREATE TABLE budget_reservations (
    job_id          TEXT PRIMARY KEY REFERENCES jobs(id) ON DELETE CASCADE,
    guild_id        TEXT,
    reserved_usd    DOUBLE PRECISION NOT NULL,
    status          TEXT NOT NULL DEFAULT 'held',
    settled_usd     DOUBLE PRECISION,
    reserved_at     TEXT COLLATE "C" NOT NULL,
    settled_at      TEXT COLLATE "C"
);
CREATE INDEX budget_reservations_guild ON budget_reservations(guild_id, reserved_at);
