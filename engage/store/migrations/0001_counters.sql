-- Counters: the durable truth behind Redis.
CREATE TABLE content_counters (
    id          text PRIMARY KEY,
    views       bigint NOT NULL DEFAULT 0,
    likes       bigint NOT NULL DEFAULT 0,
    applause    bigint NOT NULL DEFAULT 0,
    viewers_hll bytea,
    updated_at  timestamptz NOT NULL DEFAULT now()
);

-- One row per (item, user) that ever liked; unlikes keep the row with
-- liked = false so a late, older batch cannot resurrect a like (seq decides).
CREATE TABLE content_likes (
    content_id text   NOT NULL,
    user_id    text   NOT NULL,
    liked      boolean NOT NULL,
    seq        bigint NOT NULL,
    PRIMARY KEY (content_id, user_id)
);
CREATE INDEX content_likes_liked ON content_likes (content_id) WHERE liked;

CREATE TABLE content_applause (
    content_id text    NOT NULL,
    user_id    text    NOT NULL,
    total      integer NOT NULL,
    PRIMARY KEY (content_id, user_id)
);

-- Every applied flush batch, so that a retried batch is applied once.
CREATE TABLE flush_batches (
    id         text PRIMARY KEY,
    events     bigint  NOT NULL,
    items      integer NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
);
