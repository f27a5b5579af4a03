-- Sessions end what they authorised (issue 8, items 3 and 4): access tokens
-- carry their login session (`sid`), and REST and WebSocket authentication
-- refuse a token whose session is revoked or whose user is inactive.

-- Tokens issued before access tokens carried `sid` cannot be matched to a
-- session; they are refused when any "end every session" of their user
-- (password change or reset, deactivation) happened after their `iat`.
ALTER TABLE users ADD COLUMN sessions_revoked_at timestamptz;

-- Whether an access token of user u, of login session p_sid (NULL: a token
-- without sid) issued at p_iat (unix seconds), is still good. One primary-key
-- lookup of auth_sessions, joined into the caller's existing user query.
CREATE OR REPLACE FUNCTION chatd_session_ok(u users, p_sid uuid, p_iat bigint) RETURNS boolean
LANGUAGE sql STABLE AS $$
    SELECT CASE WHEN p_sid IS NULL
                THEN u.sessions_revoked_at IS NULL
                     OR u.sessions_revoked_at <= to_timestamp(p_iat)
                ELSE EXISTS (SELECT 1 FROM auth_sessions s
                             WHERE s.id = p_sid AND s.user_id = u.id AND s.revoked_at IS NULL)
           END
$$;

-- Ends every login session of p_user except p_keep (NULL: all of them), and
-- with p_hash also replaces the password, in one statement so a password never
-- changes without the sessions ending. Returns whether the user exists.
CREATE OR REPLACE FUNCTION chatd_sessions_end(p_user uuid, p_keep uuid, p_hash text)
RETURNS boolean LANGUAGE sql AS $$
    WITH rev AS (UPDATE auth_sessions SET revoked_at = now()
                 WHERE user_id = p_user AND id IS DISTINCT FROM p_keep AND revoked_at IS NULL),
    upd AS (UPDATE users SET sessions_revoked_at = now(),
                             hashed_password = coalesce(p_hash, hashed_password),
                             updated_at = CASE WHEN p_hash IS NULL THEN updated_at ELSE now() END
            WHERE id = p_user RETURNING id)
    SELECT EXISTS (SELECT 1 FROM upd)
$$;

-- The WebSocket handshake and the `auth` frame: whether the user is active,
-- whether the token's session (see chatd_session_ok) is still good, and the
-- groups whose channels its connection receives (space-separated ids).
CREATE OR REPLACE FUNCTION chatd_ws_user(p_user uuid, p_sid uuid, p_iat bigint,
                                         OUT is_active boolean, OUT session_ok boolean,
                                         OUT groups text)
RETURNS SETOF record LANGUAGE sql STABLE AS $$
    SELECT u.is_active, chatd_session_ok(u, p_sid, p_iat),
           coalesce((SELECT string_agg(gm.group_id::text, ' ') FROM group_members gm
                     WHERE gm.user_id = u.id), '')
    FROM users u WHERE u.id = p_user
$$;

-- Sending, with the rules of API.md, shared by POST /api/v1/messages (fcgi)
-- and the WebSocket `message` frame (wsd). p_public_url is PUBLIC_URL: a
-- media_url must be exactly this server's upload path, relative
-- (/api/v1/upload/<name>) or under PUBLIC_URL, of an existing upload. An
-- inactive sender is refused (403), whatever its token says.
CREATE OR REPLACE FUNCTION chatd_message_send(p_sender uuid, p_receiver uuid, p_group uuid,
                                              p_content text, p_media_url text,
                                              p_media_type text, p_public_url text,
                                              OUT status int, OUT detail text, OUT msg json,
                                              OUT pub json, OUT msg_seq bigint, OUT msg_id uuid,
                                              OUT msg_created text)
LANGUAGE plpgsql AS $$
DECLARE
    m messages;
    s users;
    base text := rtrim(coalesce(p_public_url, ''), '/');
    path text;
BEGIN
    SELECT * INTO s FROM users u WHERE u.id = p_sender;
    IF NOT FOUND OR NOT s.is_active THEN
        status := 403; detail := 'User account is inactive'; RETURN;
    END IF;
    IF p_receiver IS NOT NULL THEN
        PERFORM 1 FROM users u WHERE u.id = p_receiver AND u.is_active;
        IF NOT FOUND THEN
            status := 404; detail := 'User not found'; RETURN;
        END IF;
    ELSE
        PERFORM 1 FROM group_members gm WHERE gm.group_id = p_group AND gm.user_id = p_sender;
        IF NOT FOUND THEN
            status := 403; detail := 'You are not a member of this group'; RETURN;
        END IF;
    END IF;
    IF p_media_url IS NOT NULL THEN
        -- Compared as plain text (no pattern): PUBLIC_URL may hold regex or LIKE characters.
        path := CASE WHEN left(p_media_url, 1) = '/' THEN p_media_url
                     WHEN base <> '' AND left(p_media_url, length(base) + 1) = base || '/'
                     THEN substr(p_media_url, length(base) + 1) END;
        IF path IS NULL OR NOT EXISTS (
                SELECT 1 FROM uploads up
                WHERE '/api/v1/upload/' || up.filename = path
                  AND path ~ '^/api/v1/upload/[A-Za-z0-9._-]+$') THEN
            status := 422; detail := 'media_url must be a file uploaded to this server'; RETURN;
        END IF;
    END IF;
    INSERT INTO messages (content, sender_id, receiver_id, group_id, media_url, media_type)
    VALUES (p_content, p_sender, p_receiver, p_group, p_media_url, p_media_type)
    RETURNING * INTO m;
    status := 201;
    msg := chatd_message_read(m, s, p_sender);
    pub := chatd_message_read(m, s, NULL);  -- what other readers get: no email
    msg_seq := m.seq;
    msg_id := m.id;
    msg_created := chatd_ts(m.created_at);
END
$$;

-- The six-argument form that callers used before PUBLIC_URL was passed: only
-- the relative upload path is accepted through it.
CREATE OR REPLACE FUNCTION chatd_message_send(p_sender uuid, p_receiver uuid, p_group uuid,
                                              p_content text, p_media_url text,
                                              p_media_type text,
                                              OUT status int, OUT detail text, OUT msg json,
                                              OUT pub json, OUT msg_seq bigint, OUT msg_id uuid,
                                              OUT msg_created text)
LANGUAGE sql AS $$
    SELECT * FROM chatd_message_send(p_sender, p_receiver, p_group, p_content, p_media_url,
                                     p_media_type, NULL)
$$;
