-- Presence: sets users.is_online (and last_seen when going offline) and
-- returns the online_status frame with the space-separated channels to
-- publish it on: every user who has u as a contact, every group u is in
-- (each list capped at 5000). Shared by PATCH /api/v1/users/me/online
-- (fcgi) and the WebSocket presence of wsd.
CREATE FUNCTION chatd_set_online(u uuid, online boolean, OUT frame text, OUT channels text)
RETURNS SETOF record LANGUAGE sql AS $$
    WITH s AS (UPDATE users SET is_online = online,
                      last_seen = CASE WHEN online THEN last_seen ELSE now() END
               WHERE id = u RETURNING id, is_online, last_seen)
    SELECT json_build_object('type', 'online_status', 'user_id', s.id,
                             'is_online', s.is_online, 'last_seen', chatd_ts(s.last_seen))::text,
           concat_ws(' ',
               (SELECT string_agg('chatd:user:' || x.user_id, ' ')
                FROM (SELECT c.user_id FROM contacts c WHERE c.contact_id = s.id LIMIT 5000) x),
               (SELECT string_agg('chatd:group:' || x.group_id, ' ')
                FROM (SELECT m.group_id FROM group_members m WHERE m.user_id = s.id LIMIT 5000) x))
    FROM s
$$;
