-- Issue 10, goal 4: the message path without the deployment-wide publish
-- lock (README "The message path without a deployment-wide lock"). Writers
-- pass a sequencing gate of microseconds (nextval and one lock-table entry,
-- no commit inside), commit concurrently, and readers (the wsd tail, sync,
-- the REST after= cursor) never read past the stable position S below which
-- every seq is final.
--
-- Lock keys, all in the two-int advisory key space (the one-int/bigint space
-- is left to scripts/migrate and the old publish lock, 7001):
--   gate:    (7001, 15). Writers take it shared (they do not serialise on each
--            other), chatd_stable_seq() exclusive (no writer is between its
--            nextval and its marker then).
--   marker:  (1130000000 + seq >> 31, seq & 0x7fffffff), transaction-level:
--            "a transaction that may still insert seq or above is in flight".
--            One per transaction is enough (its lowest seq): every later seq
--            of the same transaction is higher.

-- The marker key of seq s, decoded by chatd_stable_seq().
CREATE OR REPLACE FUNCTION chatd_seq_marker_hi(s bigint) RETURNS int
LANGUAGE sql IMMUTABLE AS $$ SELECT 1130000000 + (s >> 31)::int $$;

-- The next seq, marked in flight until this transaction ends. The gate is a
-- session lock: it is released on every path, a cancel included, so it never
-- outlives the call.
CREATE OR REPLACE FUNCTION chatd_seq_take() RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    s bigint;
    held boolean := false;
BEGIN
    BEGIN
        PERFORM pg_advisory_lock_shared(7001, 15);
        held := true;
        s := nextval(pg_get_serial_sequence('messages', 'seq')::regclass);
        IF coalesce(current_setting('chatd.seq_marked', true), '') <> 'on' THEN
            PERFORM pg_advisory_xact_lock(chatd_seq_marker_hi(s), (s & 2147483647)::int);
            PERFORM set_config('chatd.seq_marked', 'on', true);
        END IF;
        PERFORM pg_advisory_unlock_shared(7001, 15);
        held := false;
    EXCEPTION WHEN others OR query_canceled THEN
        IF held THEN
            PERFORM pg_advisory_unlock_shared(7001, 15);
        END IF;
        RAISE;
    END;
    RETURN s;
END
$$;

-- S: every seq <= S is committed (visible to a snapshot taken after this
-- returns) or will never exist. S never decreases.
CREATE OR REPLACE FUNCTION chatd_stable_seq() RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    l bigint;
    m bigint;
    held boolean := false;
BEGIN
    BEGIN
        PERFORM pg_advisory_lock(7001, 15);
        held := true;
        l := coalesce(pg_sequence_last_value(pg_get_serial_sequence('messages', 'seq')::regclass),
                      0);
        SELECT min(((k.classid::bigint - 1130000000) << 31) | k.objid::bigint) INTO m
        FROM pg_locks k
        WHERE k.locktype = 'advisory' AND k.objsubid = 2 AND k.granted
          AND k.classid::bigint >= 1130000000
          AND k.database = (SELECT d.oid FROM pg_database d WHERE d.datname = current_database());
        PERFORM pg_advisory_unlock(7001, 15);
        held := false;
    EXCEPTION WHEN others OR query_canceled THEN
        IF held THEN
            PERFORM pg_advisory_unlock(7001, 15);
        END IF;
        RAISE;
    END;
    RETURN least(l, coalesce(m - 1, l));
END
$$;

-- Every INSERT into messages gets a marked seq: one made by
-- chatd_message_send() (OVERRIDING SYSTEM VALUE, already marked) is kept, as
-- is any later row of a transaction that holds its marker; otherwise (a
-- plain INSERT: seeds, tests, a future caller) the seq is taken again through
-- the gate, since the identity default was drawn outside it.
CREATE OR REPLACE FUNCTION chatd_messages_seq_guard() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF coalesce(current_setting('chatd.seq_marked', true), '') <> 'on' THEN
        NEW.seq := chatd_seq_take();
    END IF;
    RETURN NEW;
END
$$;
DROP TRIGGER IF EXISTS messages_seq_guard ON messages;
CREATE TRIGGER messages_seq_guard BEFORE INSERT ON messages
    FOR EACH ROW EXECUTE FUNCTION chatd_messages_seq_guard();

-- 0013's chatd_message_send, the INSERT taking its seq through the gate.
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
    -- Last: the checks above do not delay the writers behind the gate's readers.
    INSERT INTO messages (seq, content, sender_id, receiver_id, group_id, media_url, media_type)
    OVERRIDING SYSTEM VALUE
    VALUES (chatd_seq_take(), p_content, p_sender, p_receiver, p_group, p_media_url, p_media_type)
    RETURNING * INTO m;
    status := 201;
    msg := chatd_message_read(m, s, p_sender);
    pub := chatd_message_read(m, s, NULL);  -- what other readers get: no email
    msg_seq := m.seq;
    msg_id := m.id;
    msg_created := chatd_ts(m.created_at);
END
$$;

-- wsd's tail: S, then the messages p_after < seq <= S in seq order (at most
-- p_limit), each with its conversation and the frame every reader but the
-- sender gets. The first row carries S alone (seq NULL); the reader moves
-- its position to S when fewer than p_limit rows came, else to the last seq.
-- S and the rows are read by two statements, so the read's snapshot is
-- taken after S was computed and sees every row <= S.
CREATE OR REPLACE FUNCTION chatd_tail(p_after bigint, p_limit int)
RETURNS TABLE (stable bigint, seq bigint, sender_id uuid, receiver_id uuid, group_id uuid,
               frame text)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    s bigint := chatd_stable_seq();
BEGIN
    RETURN QUERY SELECT s, NULL::bigint, NULL::uuid, NULL::uuid, NULL::uuid, NULL::text;
    RETURN QUERY
        SELECT s, m.seq, m.sender_id, m.receiver_id, m.group_id,
               '{"type":"message",' || substr(chatd_message_read(m, u, NULL)::text, 2)
        FROM messages m JOIN users u ON u.id = m.sender_id
        WHERE m.seq > p_after AND m.seq <= s
        ORDER BY m.seq
        LIMIT p_limit;
END
$$;

-- 0010's chatd_sync, bounded by S: a replay never hands out a seq above a
-- hole that may still fill, so synced.last_seq is a true watermark.
CREATE OR REPLACE FUNCTION chatd_sync_upto(p_user uuid, p_since bigint, p_upto bigint,
                                           p_limit int, p_max_bytes int)
RETURNS TABLE (seq bigint, id uuid, msg json, more boolean)
LANGUAGE sql STABLE AS $$
    WITH c AS (
        SELECT y.m, count(*) OVER () AS total,
               coalesce(sum(octet_length((y.m).content) + 1024) OVER (
                   ORDER BY (y.m).seq ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING), 0)
                   AS before
        FROM (SELECT x.m
              FROM ((SELECT m FROM messages m
                     WHERE m.sender_id = p_user AND m.group_id IS NULL
                       AND m.seq > p_since AND m.seq <= p_upto
                     ORDER BY m.seq LIMIT p_limit)
                    UNION ALL
                    (SELECT m FROM messages m
                     WHERE m.receiver_id = p_user AND m.sender_id <> p_user
                       AND m.seq > p_since AND m.seq <= p_upto
                     ORDER BY m.seq LIMIT p_limit)
                    UNION ALL
                    (SELECT gm_m.m FROM group_members gm
                     CROSS JOIN LATERAL (SELECT m FROM messages m
                                         WHERE m.group_id = gm.group_id
                                           AND m.seq > p_since AND m.seq <= p_upto
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

CREATE OR REPLACE FUNCTION chatd_sync(p_user uuid, p_since bigint, p_limit int, p_max_bytes int)
RETURNS TABLE (seq bigint, id uuid, msg json, more boolean)
LANGUAGE plpgsql AS $$
DECLARE
    s bigint := chatd_stable_seq();
BEGIN
    RETURN QUERY SELECT * FROM chatd_sync_upto(p_user, p_since, s, p_limit, p_max_bytes);
END
$$;

-- 0006's three-argument form, bounded the same way (tests and older callers).
CREATE OR REPLACE FUNCTION chatd_sync(p_user uuid, p_since bigint, p_limit int)
RETURNS TABLE (seq bigint, id uuid, msg json)
LANGUAGE plpgsql AS $$
BEGIN
    RETURN QUERY SELECT x.seq, x.id, x.msg FROM chatd_sync(p_user, p_since, p_limit, 2147483647) x;
END
$$;
