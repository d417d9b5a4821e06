-- Revises: V2
-- V3: where each outcome went. `delivered` = 1 only says the bot is done trying; a result the
-- channel refused (the bot lost a permission mid-job) goes to the requester by DM, and one the
-- DM refused too goes nowhere: the job stays findable by /history, /params and on disk.

ALTER TABLE jobs ADD COLUMN delivered_to TEXT  -- 'channel', 'dm', or NULL: not delivered
    CHECK (delivered_to IN ('channel', 'dm'));

UPDATE jobs SET delivered_to = 'channel' WHERE delivered = 1 AND result_message_id IS NOT NULL;
