-- Two SQL functions on every message and every authenticated request were
-- parsed and planned on every call: a SQL function with a sub-SELECT is
-- never inlined, and each new call site (every transaction of a plpgsql
-- caller) runs it through fmgr_sql again. perf of POST /api/v1/messages:
-- fmgr_sql 34 % of Postgres CPU plus the heap churn of the planning; about
-- 3.5 of 6 CPU-ms per POST (README "Issue 10 figures"). The sub-SELECTs move
-- into plpgsql helpers (their plans are cached per session), so both
-- functions inline into their callers' cached plans. Results are unchanged.

CREATE OR REPLACE FUNCTION chatd_message_read_by(p_msg uuid, reader uuid) RETURNS boolean
LANGUAGE plpgsql STABLE PARALLEL SAFE AS $$
BEGIN
    RETURN EXISTS (SELECT 1 FROM message_reads r WHERE r.message_id = p_msg AND r.user_id = reader);
END
$$;

CREATE OR REPLACE FUNCTION chatd_message_read(m messages, s users, reader uuid) RETURNS json
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT json_build_object(
        'id', m.id, 'seq', m.seq, 'content', m.content,
        'sender_id', m.sender_id, 'receiver_id', m.receiver_id, 'group_id', m.group_id,
        'media_url', m.media_url, 'media_type', m.media_type,
        'is_read', CASE WHEN m.group_id IS NULL THEN m.is_read
                        ELSE chatd_message_read_by(m.id, reader) END,
        'created_at', chatd_ts(m.created_at), 'edited_at', chatd_ts(m.edited_at),
        'is_deleted', m.deleted_at IS NOT NULL,
        'sender', chatd_user_public(s, s.id = reader))
$$;

CREATE OR REPLACE FUNCTION chatd_session_live(p_sid uuid, p_user uuid) RETURNS boolean
LANGUAGE plpgsql STABLE AS $$
BEGIN
    RETURN EXISTS (SELECT 1 FROM auth_sessions s
                   WHERE s.id = p_sid AND s.user_id = p_user AND s.revoked_at IS NULL);
END
$$;

CREATE OR REPLACE FUNCTION chatd_session_ok(u users, p_sid uuid, p_iat bigint) RETURNS boolean
LANGUAGE sql STABLE AS $$
    SELECT CASE WHEN p_sid IS NULL
                THEN u.sessions_revoked_at IS NULL
                     OR u.sessions_revoked_at <= to_timestamp(p_iat)
                ELSE chatd_session_live(p_sid, u.id)
           END
$$;
