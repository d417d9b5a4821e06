-- V1: the durable job queue. The database is the truth about every job; the worker's queue
-- only carries the one job being handed over.

CREATE TABLE jobs (
    id                INTEGER PRIMARY KEY AUTOINCREMENT,
    status            TEXT    NOT NULL DEFAULT 'queued'
                      CHECK (status IN ('queued', 'running', 'done', 'failed', 'cancelled')),
    kind              TEXT    NOT NULL,          -- entrance, imagine (later: reroll, variation)
    owner_id          INTEGER NOT NULL,          -- the Discord user who asked
    guild_id          INTEGER,                   -- NULL in DMs
    channel_id        INTEGER NOT NULL,
    interaction_id    INTEGER,
    status_message_id INTEGER,                   -- the acknowledgement, edited with progress
    result_message_id INTEGER,                   -- the posted PNG (or failure)
    request_json      TEXT    NOT NULL,          -- engine.request.Request.to_json()
    call_string       TEXT    NOT NULL,          -- `doorways generate …` (the worker's, once done)
    seed              INTEGER,
    iterations        INTEGER NOT NULL,
    width             INTEGER NOT NULL,
    height            INTEGER NOT NULL,
    notes             TEXT    NOT NULL DEFAULT '', -- lines the user sees: clamping, resumption
    upload_limit      INTEGER,                   -- bytes; from the interaction
    parent_job        INTEGER REFERENCES jobs (id), -- what a reroll or variation came from
    attempts          INTEGER NOT NULL DEFAULT 0, -- times handed to the worker
    resume            INTEGER NOT NULL DEFAULT 0, -- 1: interrupted; goes before the others
    created_at        REAL    NOT NULL,          -- unix time
    started_at        REAL,
    finished_at       REAL,
    load_s            REAL,
    first_step_s      REAL,
    total_s           REAL,
    output_path       TEXT,
    error_kind        TEXT,
    error             TEXT,
    delivered         INTEGER NOT NULL DEFAULT 0  -- 1: the outcome was posted (or cannot be)
);

CREATE INDEX jobs_by_status ON jobs (status, id);
CREATE INDEX jobs_by_owner ON jobs (owner_id, created_at);
CREATE INDEX jobs_by_parent ON jobs (parent_job);
