-- Postgres twin of ../002_voice_timing_and_notes.sql.
ALTER TABLE stages ADD COLUMN duration DOUBLE PRECISION;
ALTER TABLE stages ADD COLUMN words_json TEXT;
ALTER TABLE stages ADD COLUMN cost_usd DOUBLE PRECISION;

ALTER TABLE jobs ADD COLUMN timing_json TEXT;
ALTER TABLE jobs ADD COLUMN soundtrack_json TEXT;
ALTER TABLE jobs ADD COLUMN notes_json TEXT NOT NULL DEFAULT '[]';
