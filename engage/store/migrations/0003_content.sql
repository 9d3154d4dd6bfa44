-- Published content: what a CMS announced through the publish stream.
CREATE TABLE content (
    id           text PRIMARY KEY,
    title        text NOT NULL,
    url          text NOT NULL,
    author       text NOT NULL,
    published_at timestamptz NOT NULL,
    tags         text[] NOT NULL DEFAULT '{}',
    stored_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX content_newest ON content (published_at DESC, id DESC);
CREATE INDEX content_by_author ON content (author, published_at DESC, id DESC);
