-- Coalesced presence (issue 10, goal 1): one statement stores every transition
-- a wsd instance saw during one coalescing interval, and returns what to
-- publish, one row per channel:
--   chatd:user:<contact>  one online_status frame per changed user (WS.md, unchanged);
--   chatd:group:<group>   the online_status frame when one member changed, else one
--                         {"type":"presence","group_id","users":[{user_id,is_online,last_seen}]}
--                         carrying all of them.
-- ids/states are parallel arrays; when an id repeats, its last state wins.
-- Rows are locked in id order so two instances' batches cannot deadlock.
-- The per-user caps (5000 contacts, 5000 groups) are chatd_set_online's.
CREATE FUNCTION chatd_set_online_batch(ids uuid[], states boolean[],
                                       OUT channel text, OUT frame text)
RETURNS SETOF record LANGUAGE sql AS $$
    WITH t AS (SELECT DISTINCT ON (x.id) x.id, x.st
               FROM unnest(ids, states) WITH ORDINALITY AS x(id, st, n)
               WHERE x.id IS NOT NULL AND x.st IS NOT NULL
               ORDER BY x.id, x.n DESC),
    l AS (SELECT u.id FROM users u WHERE u.id IN (SELECT id FROM t) ORDER BY u.id FOR UPDATE),
    s AS (UPDATE users u SET is_online = t.st,
                 last_seen = CASE WHEN t.st THEN u.last_seen ELSE now() END
          FROM t JOIN l ON l.id = t.id
          WHERE u.id = t.id
          RETURNING u.id, u.is_online, u.last_seen),
    o AS (SELECT s.id, jsonb_build_object('user_id', s.id, 'is_online', s.is_online,
                                          'last_seen', chatd_ts(s.last_seen)) AS j
          FROM s),
    g AS (SELECT m.group_id, o.j
          FROM o CROSS JOIN LATERAL (SELECT gm.group_id FROM group_members gm
                                     WHERE gm.user_id = o.id LIMIT 5000) m)
    SELECT 'chatd:user:' || c.user_id,
           (jsonb_build_object('type', 'online_status') || o.j)::text
    FROM o CROSS JOIN LATERAL (SELECT ct.user_id FROM contacts ct
                               WHERE ct.contact_id = o.id LIMIT 5000) c
    UNION ALL
    SELECT 'chatd:group:' || g.group_id,
           CASE WHEN count(*) = 1
                THEN (jsonb_build_object('type', 'online_status') || (array_agg(g.j))[1])::text
                ELSE jsonb_build_object('type', 'presence', 'group_id', g.group_id,
                                        'users', jsonb_agg(g.j))::text END
    FROM g GROUP BY g.group_id
$$;
