-- Revises: V3
-- V4: a server's own pause, and the task file behind /task jobs.

-- /admin pause in a server holds that server's queued jobs (the painter goes on with
-- everyone else's); the pause of every server stays in bot_state.
CREATE TABLE paused_guilds (
    guild_id  INTEGER PRIMARY KEY,
    paused_by INTEGER NOT NULL,   -- the admin who paused it
    paused_at REAL    NOT NULL    -- unix time
);

-- /task: the SHA-256 of the uploaded file, so that a retry of the same file (nothing seemed
-- to happen) is answered with the jobs it already queued instead of queueing them again.
ALTER TABLE jobs ADD COLUMN source_sha256 TEXT;
