-- What the WebSocket daemon (wsd) shares with fcgi, or needs beyond it.

-- PATCH /api/v1/messages/{id}/read (fcgi) and the WebSocket `read` frame
-- (wsd): private → the receiver's flag; group → a message_reads row for a
-- member other than the sender. One row (the sender to tell, the read time)
-- when the reader may mark it, none otherwise ("Message not found").
CREATE FUNCTION chatd_message_mark_read(p_message uuid, p_reader uuid,
                                        OUT sender_id uuid, OUT read_at text)
RETURNS SETOF record LANGUAGE sql AS $$
    WITH m AS (SELECT x.id, x.sender_id, x.receiver_id, x.group_id FROM messages x
               WHERE x.id = p_message AND x.deleted_at IS NULL),
    ok AS (SELECT m.* FROM m WHERE m.receiver_id = p_reader
           OR (m.group_id IS NOT NULL AND m.sender_id <> p_reader
               AND EXISTS (SELECT 1 FROM group_members gm
                           WHERE gm.group_id = m.group_id AND gm.user_id = p_reader))),
    p AS (UPDATE messages x SET is_read = true FROM ok
          WHERE x.id = ok.id AND ok.group_id IS NULL AND NOT x.is_read RETURNING x.id),
    g AS (INSERT INTO message_reads (message_id, user_id) SELECT ok.id, p_reader FROM ok
          WHERE ok.group_id IS NOT NULL ON CONFLICT DO NOTHING RETURNING message_reads.read_at)
    SELECT ok.sender_id, chatd_ts(coalesce((SELECT g.read_at FROM g), now())) FROM ok
$$;

-- WebSocket `sync`: the first p_limit messages above p_since that user p_user
-- may see, oldest first, as that user reads them: private messages in both
-- directions and the messages of the groups they are in. Each branch walks
-- one index in seq order ((sender_id, seq), (receiver_id, seq),
-- (group_id, seq)) and stops at p_limit, so a batch costs O(p_limit) rows
-- per branch whatever the history. A message to oneself comes once.
CREATE FUNCTION chatd_sync(p_user uuid, p_since bigint, p_limit int)
RETURNS TABLE (seq bigint, id uuid, msg json)
LANGUAGE sql STABLE AS $$
    SELECT x.seq, x.id, chatd_message_read(x, s, p_user)
    FROM ((SELECT m.* FROM messages m
           WHERE m.sender_id = p_user AND m.group_id IS NULL AND m.seq > p_since
           ORDER BY m.seq LIMIT p_limit)
          UNION ALL
          (SELECT m.* FROM messages m
           WHERE m.receiver_id = p_user AND m.sender_id <> p_user AND m.seq > p_since
           ORDER BY m.seq LIMIT p_limit)
          UNION ALL
          (SELECT gm_m.* FROM group_members gm
           CROSS JOIN LATERAL (SELECT m.* FROM messages m
                               WHERE m.group_id = gm.group_id AND m.seq > p_since
                               ORDER BY m.seq LIMIT p_limit) gm_m
           WHERE gm.user_id = p_user)) x
    JOIN users s ON s.id = x.sender_id
    ORDER BY x.seq
    LIMIT p_limit
$$;

-- The WebSocket handshake: whether the token's user may connect, and the
-- groups whose channels its connection receives (space-separated ids).
CREATE FUNCTION chatd_ws_user(p_user uuid, OUT is_active boolean, OUT groups text)
RETURNS SETOF record LANGUAGE sql STABLE AS $$
    SELECT u.is_active,
           coalesce((SELECT string_agg(gm.group_id::text, ' ') FROM group_members gm
                     WHERE gm.user_id = u.id), '')
    FROM users u WHERE u.id = p_user
$$;
