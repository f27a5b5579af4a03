-- chatd schema, as described by shared/spec/SCHEMA.md.
-- Applied by scripts/migrate inside one transaction: no BEGIN/COMMIT here.
-- Index names start with their table's name.

CREATE EXTENSION IF NOT EXISTS pg_trgm;

CREATE TABLE users (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    email           varchar(320) NOT NULL,
    hashed_password varchar(1024) NOT NULL,
    username        varchar(50) NOT NULL,
    first_name      varchar(100),
    last_name       varchar(100),
    avatar_url      varchar(500),
    bio             varchar(500),
    is_active       boolean NOT NULL DEFAULT true,
    is_superuser    boolean NOT NULL DEFAULT false,
    is_verified     boolean NOT NULL DEFAULT false,
    is_online       boolean NOT NULL DEFAULT false,
    last_seen       timestamptz,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now()
);
-- Email and username are unique case-insensitively.
CREATE UNIQUE INDEX users_email_lower_key ON users (lower(email));
CREATE UNIQUE INDEX users_username_lower_key ON users (lower(username));
-- Prefix search (LIKE 'abc%') whatever the database collation is.
CREATE INDEX users_username_lower_pattern_idx ON users (lower(username) text_pattern_ops);
CREATE INDEX users_email_lower_pattern_idx ON users (lower(email) text_pattern_ops);
CREATE INDEX users_is_active_idx ON users (is_active) WHERE is_active = true;
-- Substring search: queries must use this exact expression to be served by it.
CREATE INDEX users_search_trgm_idx ON users USING gin
    ((lower(username || ' ' || coalesce(first_name, '') || ' ' || coalesce(last_name, '')))
     gin_trgm_ops);

CREATE TABLE oauth_accounts (
    id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id       uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    oauth_name    varchar(100) NOT NULL,
    access_token  text NOT NULL,
    expires_at    bigint,
    refresh_token text,
    account_id    varchar(320) NOT NULL,
    account_email varchar(320) NOT NULL,
    CONSTRAINT oauth_accounts_oauth_name_account_id_key UNIQUE (oauth_name, account_id)
);
CREATE INDEX oauth_accounts_user_id_idx ON oauth_accounts (user_id);

-- One row per login; refresh-token rotation replaces refresh_jti.
CREATE TABLE auth_sessions (
    id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id      uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    refresh_jti  uuid NOT NULL DEFAULT gen_random_uuid(),
    created_at   timestamptz NOT NULL DEFAULT now(),
    last_used_at timestamptz NOT NULL DEFAULT now(),
    revoked_at   timestamptz,
    user_agent   text,
    ip           text,
    CONSTRAINT auth_sessions_refresh_jti_key UNIQUE (refresh_jti)
);
CREATE INDEX auth_sessions_user_id_idx ON auth_sessions (user_id);

CREATE TABLE groups (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    name        varchar(200) NOT NULL,
    description text,
    avatar_url  varchar(500),
    is_private  boolean NOT NULL DEFAULT false,
    creator_id  uuid REFERENCES users (id) ON DELETE SET NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX groups_creator_id_idx ON groups (creator_id);

CREATE TABLE group_members (
    id        uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    group_id  uuid NOT NULL REFERENCES groups (id) ON DELETE CASCADE,
    user_id   uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    role      varchar(20) NOT NULL DEFAULT 'member'
              CONSTRAINT group_members_role_check CHECK (role IN ('member', 'admin')),
    joined_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT group_members_group_id_user_id_key UNIQUE (group_id, user_id)
);
CREATE INDEX group_members_user_id_idx ON group_members (user_id);

CREATE TABLE messages (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    seq         bigint GENERATED ALWAYS AS IDENTITY,
    content     text NOT NULL DEFAULT '',
    sender_id   uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    receiver_id uuid REFERENCES users (id) ON DELETE CASCADE,
    group_id    uuid REFERENCES groups (id) ON DELETE CASCADE,
    media_url   varchar(500),
    media_type  varchar(20),
    is_read     boolean NOT NULL DEFAULT false,
    created_at  timestamptz NOT NULL DEFAULT now(),
    edited_at   timestamptz,
    deleted_at  timestamptz,
    CONSTRAINT messages_seq_key UNIQUE (seq),
    -- A message goes to exactly one user or one group.
    CONSTRAINT messages_target_check CHECK ((receiver_id IS NULL) <> (group_id IS NULL))
);
-- A private conversation in both directions, ordered by seq.
CREATE INDEX messages_private_conv_idx ON messages
    (least(sender_id, receiver_id), greatest(sender_id, receiver_id), seq)
    WHERE group_id IS NULL;
CREATE INDEX messages_group_id_seq_idx ON messages (group_id, seq);
CREATE INDEX messages_receiver_unread_idx ON messages (receiver_id) WHERE NOT is_read;
-- The caller's latest messages (sent or received) and sync; also serve the
-- ON DELETE CASCADE of users.
CREATE INDEX messages_sender_id_seq_idx ON messages (sender_id, seq);
CREATE INDEX messages_receiver_id_seq_idx ON messages (receiver_id, seq);

-- Per-member read state of group messages.
CREATE TABLE message_reads (
    message_id uuid NOT NULL REFERENCES messages (id) ON DELETE CASCADE,
    user_id    uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    read_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (message_id, user_id)
);
CREATE INDEX message_reads_user_id_idx ON message_reads (user_id, message_id);

CREATE TABLE contacts (
    id         uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id    uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    contact_id uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    nickname   varchar(100),
    created_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT contacts_user_id_contact_id_key UNIQUE (user_id, contact_id),
    CONSTRAINT contacts_not_self_check CHECK (user_id <> contact_id)
);
-- Who has this user as a contact (presence fan-out, ON DELETE CASCADE).
CREATE INDEX contacts_contact_id_idx ON contacts (contact_id);

CREATE TABLE uploads (
    id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    owner_id     uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    filename     varchar(100) NOT NULL,
    content_type varchar(100) NOT NULL,
    size         bigint NOT NULL,
    sha256       char(64),
    created_at   timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT uploads_filename_key UNIQUE (filename)
);
CREATE INDEX uploads_owner_id_idx ON uploads (owner_id);
