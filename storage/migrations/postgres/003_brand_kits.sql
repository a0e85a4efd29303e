-- Postgres twin of ../003_brand_kits.sql.
CREATE TABLE guild_settings (
    guild_id        TEXT PRIMARY KEY,
    brand_json      TEXT NOT NULL DEFAULT '{}',
    policy_json     TEXT NOT NULL DEFAULT '{}',
    updated_by      TEXT,
    updated_at      TEXT COLLATE "C" NOT NULL
);

ALTER TABLE jobs ADD COLUMN brand_json TEXT;
