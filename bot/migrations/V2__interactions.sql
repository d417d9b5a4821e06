-- Revises: V1
-- V2: what the buttons, reactions, admin and /settings commands keep: deleted results, the
-- painter's pause, each guild's caps, quota overrides and bans, and each person's defaults.

ALTER TABLE jobs ADD COLUMN deleted_at REAL;   -- the result message was deleted (🗑); row kept

CREATE INDEX jobs_by_result_message ON jobs (result_message_id);
CREATE INDEX jobs_by_status_message ON jobs (status_message_id);

-- Process-wide flags (one GPU serves every guild): 'paused' = '1' while /admin pause holds.
CREATE TABLE bot_state (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

-- /admin caps: a guild's own limits, tighter than the configured ones (NULL: the configured).
CREATE TABLE guild_caps (
    guild_id       INTEGER PRIMARY KEY,
    max_iterations INTEGER,
    max_width      INTEGER,
    max_height     INTEGER
);

-- /admin quota: a user's or a role's daily images and pending jobs (NULL: the configured).
CREATE TABLE quota_overrides (
    guild_id     INTEGER NOT NULL,
    target_kind  TEXT    NOT NULL CHECK (target_kind IN ('user', 'role')),
    target_id    INTEGER NOT NULL,
    daily_images INTEGER,
    max_pending  INTEGER,
    PRIMARY KEY (guild_id, target_kind, target_id)
);

-- /admin ban: who may not paint in a guild.
CREATE TABLE bans (
    guild_id   INTEGER NOT NULL,
    user_id    INTEGER NOT NULL,
    banned_by  INTEGER NOT NULL,
    reason     TEXT    NOT NULL DEFAULT '',
    created_at REAL    NOT NULL,
    PRIMARY KEY (guild_id, user_id)
);

-- /settings: a person's defaults, applied to their commands (NULL: the command's default).
CREATE TABLE user_settings (
    user_id    INTEGER PRIMARY KEY,
    style      TEXT,
    iterations INTEGER,
    width      INTEGER,
    height     INTEGER,
    dm         INTEGER NOT NULL DEFAULT 0   -- 1: results are sent by DM too
);
