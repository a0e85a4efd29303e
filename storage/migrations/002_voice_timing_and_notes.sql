-- What a voice stage measured (its length, its word timings) and what a stage cost when it is billed
-- per unit: a restarted job fits the scenes to the voice and draws captions from these, without
-- re-reading the audio files.
ALTER TABLE stages ADD COLUMN duration REAL;
ALTER TABLE stages ADD COLUMN words_json TEXT;
ALTER TABLE stages ADD COLUMN cost_usd REAL;

-- The job's scene timing once fitted to the voice (final durations, per-scene speed), so a resumed
-- job retimes its clips and places its lines with the same numbers; the mixed soundtrack; and the
-- notes the user sees (a part that is missing and why, a line that does not fit).
ALTER TABLE jobs ADD COLUMN timing_json TEXT;
ALTER TABLE jobs ADD COLUMN soundtrack_json TEXT;
ALTER TABLE jobs ADD COLUMN notes_json TEXT NOT NULL DEFAULT '[]';
