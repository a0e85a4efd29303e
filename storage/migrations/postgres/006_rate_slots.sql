-- Postgres twin of ../006_rate_slots.sql (request budgets shared by every process: a row per slot, a
-- slot free once `free_at`, seconds since the epoch by the server's clock, has passed).
CREATE TABLE rate_slots (
    budget      TEXT NOT NULL,
    slot        BIGINT NOT NULL,
    free_at     DOUBLE PRECISION NOT NULL,
    holder      TEXT,
    PRIMARY KEY (budget, slot)
);
CREATE INDEX rate_slots_free ON rate_slots(budget, free_at);
