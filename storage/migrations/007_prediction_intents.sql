-- The create a stage is about to send to Replicate, recorded BEFORE the POST (issue 15, "nothing paid
-- twice"; docs/durable-jobs.md, "A kill during a create"). A process killed after Replicate accepted a
-- create but before its id reached `stages.prediction_id` leaves this row behind: the next run of that
-- stage looks for the prediction in Replicate's list of recent predictions (same model or version, same
-- fingerprint of the input, created from a little before `sent_at` on) and waits for it instead of
-- paying for another. Recording the id deletes the row in the same transaction; one row per stage, a
-- new create replaces it. Times are UTC ISO text with microseconds.
CREATE TABLE prediction_intents (
    job_id          TEXT NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,
    scene_index     INTEGER NOT NULL,
    stage           TEXT NOT NULL,
    attempt         INTEGER NOT NULL,   -- the stage's attempt that sent it
    provider        TEXT NOT NULL,
    model           TEXT NOT NULL,      -- "owner/name" (an official model) or the version id
    fingerprint     TEXT NOT NULL,      -- sha256 of the input's scalar fields (pipeline.providers.prediction_intent)
    sent_at         TEXT NOT NULL,      -- wall clock just before the POST
    PRIMARY KEY (job_id, scene_index, stage)
);
