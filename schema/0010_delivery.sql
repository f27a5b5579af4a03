-- Issue 8 item 6: a replay batch bounded by bytes as well as rows, so one
-- wsd connection never holds more than about p_max_bytes of messages from a
-- batch (the three-argument chatd_sync stays for older callers). Rows are
-- kept while the estimated bytes before them (content plus 1 KiB for the
-- rest of the frame) are under p_max_bytes, so a batch has at least one row
-- however large; the JSON is built for the kept rows only. `more` is true
-- when rows were left out (by the row limit or the byte limit): read again
-- above the last seq.
CREATE OR REPLACE FUNCTION chatd_sync(p_user uuid, p_since bigint, p_limit int, p_max_bytes int)
RETURNS TABLE (seq bigint, id uuid, msg json, more boolean)
LANGUAGE sql STABLE AS $$
    WITH c AS (
        SELECT y.m, count(*) OVER () AS total,
               coalesce(sum(octet_length((y.m).content) + 1024) OVER (
                   ORDER BY (y.m).seq ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING), 0)
                   AS before
        FROM (SELECT x.m
              FROM ((SELECT m FROM messages m
                     WHERE m.sender_id = p_user AND m.group_id IS NULL AND m.seq > p_since
                     ORDER BY m.seq LIMIT p_limit)
                    UNION ALL
                    (SELECT m FROM messages m
                     WHERE m.receiver_id = p_user AND m.sender_id <> p_user AND m.seq > p_since
                     ORDER BY m.seq LIMIT p_limit)
                    UNION ALL
                    (SELECT gm_m.m FROM group_members gm
                     CROSS JOIN LATERAL (SELECT m FROM messages m
                                         WHERE m.group_id = gm.group_id AND m.seq > p_since
                                         ORDER BY m.seq LIMIT p_limit) gm_m
                     WHERE gm.user_id = p_user)) x
              ORDER BY (x.m).seq
              LIMIT p_limit) y)
    SELECT (c.m).seq, (c.m).id, chatd_message_read(c.m, s, p_user),
           c.total = p_limit OR count(*) OVER () < c.total
    FROM c JOIN users s ON s.id = (c.m).sender_id
    WHERE c.before < p_max_bytes
    ORDER BY (c.m).seq
$$;
