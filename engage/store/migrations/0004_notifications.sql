-- Notifications: each user's durable queue, newest first by id. A notification
-- is unique per (user, source event): replaying an event creates nothing new.
-- pushed_at is set once it is in the user's real-time history, so a replay
-- after a crash pushes only what was not pushed yet.
CREATE TABLE notifications (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id      text NOT NULL,
    kind         text NOT NULL,
    data         jsonb NOT NULL,
    source_event text NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    read_at      timestamptz,
    pushed_at    timestamptz,
    UNIQUE (user_id, source_event)
);
CREATE INDEX notifications_by_user ON notifications (user_id, id DESC);
CREATE INDEX notifications_unread ON notifications (user_id, id DESC) WHERE read_at IS NULL;

-- Who follows whom: new content by an author notifies their followers.
CREATE TABLE follows (
    follower   text NOT NULL,
    author     text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (follower, author)
);
CREATE INDEX follows_by_author ON follows (author, follower);
