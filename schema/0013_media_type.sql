-- Messages with media: media_type (image or video) must be the family of the
-- uploaded file's stored type (chatd_upload_media_ok, 0012), on top of the
-- rules of 0009. A NULL media_type makes no claim and is accepted.
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
        IF NOT chatd_upload_media_ok(path, p_media_type) THEN
            status := 422; detail := 'media_type does not match the uploaded file'; RETURN;
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
