-- Comments: durable before visible. Replies point at their parent and at the
-- top-level comment of their thread (root), so a page of threads is two queries.
CREATE TABLE comments (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    content_id text NOT NULL,
    author     text NOT NULL,
    body       text NOT NULL,
    parent_id  bigint REFERENCES comments (id),
    root_id    bigint REFERENCES comments (id),
    created_at timestamptz NOT NULL DEFAULT now(),
    edited_at  timestamptz,
    deleted_at timestamptz
);
CREATE INDEX comments_threads ON comments (content_id, created_at, id)
    WHERE parent_id IS NULL AND deleted_at IS NULL;
CREATE INDEX comments_replies ON comments (root_id, created_at, id) WHERE deleted_at IS NULL;
CREATE INDEX comments_visible ON comments (content_id) WHERE deleted_at IS NULL;
