-- MessageRead of API.md, built next to the rows (see 0002_json.sql).
-- is_read: for a private message its flag; for a group message whether `reader`
-- has a message_reads row (each member reads for themself).
CREATE FUNCTION chatd_message_read(m messages, s users, reader uuid) RETURNS json
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT json_build_object(
        'id', m.id, 'seq', m.seq, 'content', m.content,
        'sender_id', m.sender_id, 'receiver_id', m.receiver_id, 'group_id', m.group_id,
        'media_url', m.media_url, 'media_type', m.media_type,
        'is_read', CASE WHEN m.group_id IS NULL THEN m.is_read
                        ELSE EXISTS (SELECT 1 FROM message_reads r
                                     WHERE r.message_id = m.id AND r.user_id = reader) END,
        'created_at', chatd_ts(m.created_at), 'edited_at', chatd_ts(m.edited_at),
        'is_deleted', m.deleted_at IS NOT NULL,
        'sender', chatd_user_public(s, s.id = reader))
$$;

-- Sync replays everything a user may see above a seq: private messages in
-- both directions (served by the (sender_id, seq) and (receiver_id, seq)
-- indexes) and the messages of the groups they belong to ((group_id, seq)).
-- Sending, with the rules of API.md, shared by POST /api/v1/messages (fcgi)
-- and the WebSocket `message` frame (wsd) so both enforce the same checks.
-- status is the HTTP status: 201 with the message (msg as the sender sees it,
-- pub as everyone else does), or 403/404/422 with detail.
CREATE FUNCTION chatd_message_send(p_sender uuid, p_receiver uuid, p_group uuid, p_content text,
                                   p_media_url text, p_media_type text,
                                   OUT status int, OUT detail text, OUT msg json, OUT pub json,
                                   OUT msg_seq bigint, OUT msg_id uuid, OUT msg_created text)
LANGUAGE plpgsql AS $$
DECLARE
    m messages;
    s users;
BEGIN
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
    IF p_media_url IS NOT NULL AND NOT EXISTS (
            SELECT 1 FROM uploads up
            WHERE up.filename = substring(p_media_url from '/api/v1/upload/([A-Za-z0-9._-]+)$')) THEN
        status := 422; detail := 'media_url must be a file uploaded to this server'; RETURN;
    END IF;
    INSERT INTO messages (content, sender_id, receiver_id, group_id, media_url, media_type)
    VALUES (p_content, p_sender, p_receiver, p_group, p_media_url, p_media_type)
    RETURNING * INTO m;
    SELECT * INTO s FROM users u WHERE u.id = p_sender;
    status := 201;
    msg := chatd_message_read(m, s, p_sender);
    pub := chatd_message_read(m, s, NULL);  -- what other readers get: no email
    msg_seq := m.seq;
    msg_id := m.id;
    msg_created := chatd_ts(m.created_at);
END
$$;

-- The last private message per partner of user u, newest conversation first.
CREATE FUNCTION chatd_private_last(u uuid) RETURNS TABLE (partner uuid, msg messages)
LANGUAGE sql STABLE AS $$
    SELECT DISTINCT ON (x.partner) x.partner, x.m
    FROM (SELECT m, CASE WHEN m.sender_id = u THEN m.receiver_id ELSE m.sender_id END AS partner
          FROM messages m
          WHERE m.group_id IS NULL AND (m.sender_id = u OR m.receiver_id = u)) x
    ORDER BY x.partner, (x.m).seq DESC
$$;

-- Unread group messages of user u in group g, counted up to a cap.
CREATE FUNCTION chatd_group_unread(g uuid, u uuid, cap int) RETURNS bigint
LANGUAGE sql STABLE AS $$
    SELECT count(*) FROM (
        SELECT 1 FROM messages m
        WHERE m.group_id = g AND m.sender_id <> u AND m.deleted_at IS NULL
          AND NOT EXISTS (SELECT 1 FROM message_reads r WHERE r.message_id = m.id AND r.user_id = u)
        LIMIT cap) z
$$;
