-- Postgres twin of ../007_prediction_intents.sql (a create about to be sent, recorded before the POST,
-- so a run killed before the id was stored finds the prediction instead of paying for another).
CREATE TABLE prediction_intents (
    job_id          TEXT NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,
    scene_index     BIGINT NOT NULL,
    stage           TEXT COLLATE "C" NOT NULL,
    attempt         BIGINT NOT NULL,
    provider        TEXT NOT NULL,
    model           TEXT NOT NULL,
    fingerprint     TEXT NOT NULL,
    sent_at         TEXT COLLATE "C" NOT NULL,
    PRIMARY KEY (job_id, scene_index, stage)
);
