-- Spend caps: what each prediction cost, and the money a job holds against its server's budgets.
--
-- A prediction's cost is written when it ends (its billed GPU time × the price, or the model's unit
-- price), so a server's spend is a sum over its jobs' predictions.
ALTER TABLE predictions ADD COLUMN cost_usd REAL;

-- One reservation per job, taken at approval in the same transaction as the budget check, so two
-- approvals racing for a server's last dollars cannot both pass. While the job runs it holds
-- `reserved_usd` (or what it has actually spent, if that is more); when the job ends it is settled
-- to what its predictions cost, and what it did not spend goes back to the budget. guild_id NULL is
-- the command line's own bucket. It counts in the day and month it was taken (`reserved_at`, UTC).
CREATE TABLE budget_reservations (
    job_id          TEXT PRIMARY KEY REFERENCES jobs(id) ON DELETE CASCADE,
    guild_id        TEXT,
    reserved_usd    REAL NOT NULL,
    status          TEXT NOT NULL DEFAULT 'held',   -- held | settled
    settled_usd     REAL,
    reserved_at     TEXT NOT NULL,
    settled_at      TEXT
);
CREATE INDEX budget_reservations_guild ON budget_reservations(guild_id, reserved_at);
