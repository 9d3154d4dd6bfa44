-- Moderation: a comment's status (held, visible, hidden, rejected; deleted is
-- still deleted_at), who moderated it last, bans and trusted commenters.
-- Existing comments were all visible.
ALTER TABLE comments
    ADD COLUMN status text NOT NULL DEFAULT 'visible'
        CHECK (status IN ('held', 'visible', 'hidden', 'rejected')),
    ADD COLUMN moderated_at timestamptz,
    ADD COLUMN moderated_by text;

-- The moderation queue: held comments, oldest first.
CREATE INDEX comments_held ON comments (created_at, id)
    WHERE status = 'held' AND deleted_at IS NULL;
-- A user's comments, for removing them all.
CREATE INDEX comments_by_author ON comments (author) WHERE deleted_at IS NULL;

-- One ban per user at most; banning again replaces it, lifting deletes it.
-- Redis mirrors the active ones (<prefix>ban:<user>, expiring with the ban).
CREATE TABLE bans (
    user_id    text PRIMARY KEY,
    until      timestamptz NOT NULL,
    reason     text NOT NULL DEFAULT '',
    banned_by  text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX bans_until ON bans (until);

-- Users one of whose comments a moderator approved (moderation_mode "first").
CREATE TABLE trusted_commenters (
    user_id     text PRIMARY KEY,
    approved_by text NOT NULL,
    trusted_at  timestamptz NOT NULL DEFAULT now()
);
