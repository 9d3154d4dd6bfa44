-- How far the announcement of each content item has got, so that a process
-- dying between storing and announcing leaves the rest owed, not lost:
-- 0 = nothing announced, 1 = feed:all done, 2 = fully announced.
-- Rows stored before this column existed were announced in full.
ALTER TABLE content ADD COLUMN announce_step smallint NOT NULL DEFAULT 2;
