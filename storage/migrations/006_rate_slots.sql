-- Request budgets spent together by every process on this database (issue 15; docs/durable-jobs.md,
-- "Account limits are global"): Replicate's creates and polls, Discord's edits of one status message
-- and of one channel. A budget of N requests per window is N rows, one per slot; a slot is free once
-- `free_at` has passed. Taking one is a single conditional UPDATE (storage/rate_slots.py), so two
-- processes can never take the same slot, and no budget ever has more than N takes in flight or within
-- a window. Times are seconds since the epoch by the database's own clock (SQLite: this host's;
-- Postgres: the server's), so hosts whose clocks disagree still agree on the windows.
CREATE TABLE rate_slots (
    budget      TEXT NOT NULL,       -- 'replicate.creates', 'replicate.polls', 'discord.message:<id>', …
    slot        INTEGER NOT NULL,    -- 0 … N-1
    free_at     REAL NOT NULL,       -- when the slot may be taken again
    holder      TEXT,                -- the take that holds it (a release must name it), NULL once released
    PRIMARY KEY (budget, slot)
);
CREATE INDEX rate_slots_free ON rate_slots(budget, free_at);
