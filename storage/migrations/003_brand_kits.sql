-- A brand kit and a policy per Discord server (guild), written by /brand: the kit is how its ads
-- look (colours, font, logo, call to action), the policy what the server allows and may spend.
-- Both are JSON validated by the pipeline; a server with no row gets the defaults.
CREATE TABLE guild_settings (
    guild_id        TEXT PRIMARY KEY,
    brand_json      TEXT NOT NULL DEFAULT '{}',
    policy_json     TEXT NOT NULL DEFAULT '{}',
    updated_by      TEXT,
    updated_at      TEXT NOT NULL
);

-- The kit a job was approved with: a kit changed while the job runs applies to the next ad (or to
-- this one through a re-render), never halfway through this one.
ALTER TABLE jobs ADD COLUMN brand_json TEXT;
