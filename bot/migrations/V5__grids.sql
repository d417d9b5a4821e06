-- Revises: V4
-- V5: grids (a command's `count` of pictures painted as one batch).

-- Each picture's PNG of a batch job, as a JSON list in batch order (output_path is their
-- grid); NULL for a job of one picture.
ALTER TABLE jobs ADD COLUMN picture_paths TEXT;

-- /settings count: a person's default number of pictures per command (NULL: one).
ALTER TABLE user_settings ADD COLUMN count INTEGER;
