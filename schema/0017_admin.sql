-- The admin API (API.md "Admin"): the audit log, the indexes its lists need on
-- 1M rows, and the functions fcgi/h_admin*.c call. A list is one statement
-- built here from a fixed per-model description (chatd_admin_query): column
-- names come only from this file, values only travel as parameters.

CREATE TABLE admin_audit (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    admin_id uuid REFERENCES users ON DELETE SET NULL,
    action varchar(20) NOT NULL,
    model varchar(20) NOT NULL,
    object_id uuid,
    changes jsonb NOT NULL DEFAULT '{}',
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX admin_audit_created_at_idx ON admin_audit (created_at, id);
CREATE INDEX admin_audit_admin_id_idx ON admin_audit (admin_id, created_at);
CREATE INDEX admin_audit_object_id_idx ON admin_audit (object_id, created_at);

-- Sort orders of the lists (newest first by default), each walked by an index.
CREATE INDEX users_created_at_idx ON users (created_at, id);
CREATE INDEX users_last_seen_idx ON users (last_seen, id);
-- The filters whose matches are usually few (superusers, deactivated, online): a page or a
-- count of them never walks every user.
CREATE INDEX users_superuser_created_idx ON users (created_at, id) WHERE is_superuser;
CREATE INDEX users_inactive_created_idx ON users (created_at, id) WHERE NOT is_active;
CREATE INDEX users_online_created_idx ON users (created_at, id) WHERE is_online;
CREATE INDEX users_admin_search_trgm_idx ON users USING gin
    ((username || ' ' || email || ' ' || coalesce(first_name, '') || ' ' || coalesce(last_name, ''))
     gin_trgm_ops);
CREATE INDEX messages_created_at_idx ON messages (created_at, id);
CREATE INDEX messages_content_trgm_idx ON messages USING gin (content gin_trgm_ops);
CREATE INDEX groups_created_at_idx ON groups (created_at, id);
CREATE INDEX groups_updated_at_idx ON groups (updated_at, id);
CREATE INDEX groups_name_lower_idx ON groups (lower(name), id);
CREATE INDEX groups_admin_search_trgm_idx ON groups USING gin
    ((name || ' ' || coalesce(description, '')) gin_trgm_ops);
CREATE INDEX group_members_joined_at_idx ON group_members (joined_at, id);
CREATE INDEX contacts_created_at_idx ON contacts (created_at, id);
CREATE INDEX contacts_nickname_trgm_idx ON contacts USING gin (nickname gin_trgm_ops);

-- Admin rows: every column but secrets (hashed_password, sessions_revoked_at).
CREATE FUNCTION chatd_admin_user(u users) RETURNS json
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT json_build_object(
        'id', u.id, 'email', u.email, 'username', u.username,
        'first_name', u.first_name, 'last_name', u.last_name, 'avatar_url', u.avatar_url,
        'bio', u.bio, 'is_active', u.is_active, 'is_superuser', u.is_superuser,
        'is_verified', u.is_verified, 'is_online', u.is_online,
        'last_seen', chatd_ts(u.last_seen), 'created_at', chatd_ts(u.created_at),
        'updated_at', chatd_ts(u.updated_at))
$$;

CREATE FUNCTION chatd_admin_message(m messages) RETURNS json
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT json_build_object(
        'id', m.id, 'seq', m.seq, 'content', m.content, 'sender_id', m.sender_id,
        'receiver_id', m.receiver_id, 'group_id', m.group_id, 'media_url', m.media_url,
        'media_type', m.media_type, 'is_read', m.is_read, 'created_at', chatd_ts(m.created_at),
        'edited_at', chatd_ts(m.edited_at), 'is_deleted', m.deleted_at IS NOT NULL)
$$;

CREATE FUNCTION chatd_admin_group(g groups) RETURNS json
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT json_build_object(
        'id', g.id, 'name', g.name, 'description', g.description, 'avatar_url', g.avatar_url,
        'creator_id', g.creator_id, 'is_private', g.is_private,
        'created_at', chatd_ts(g.created_at), 'updated_at', chatd_ts(g.updated_at),
        'member_count', (SELECT count(*) FROM group_members m WHERE m.group_id = g.id))
$$;

CREATE FUNCTION chatd_admin_group_member(m group_members) RETURNS json
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT json_build_object(
        'id', m.id, 'group_id', m.group_id, 'user_id', m.user_id, 'role', m.role,
        'joined_at', chatd_ts(m.joined_at))
$$;

CREATE FUNCTION chatd_admin_contact(c contacts) RETURNS json
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT json_build_object(
        'id', c.id, 'user_id', c.user_id, 'contact_id', c.contact_id, 'nickname', c.nickname,
        'created_at', chatd_ts(c.created_at))
$$;

CREATE FUNCTION chatd_admin_audit_row(a admin_audit) RETURNS json
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT json_build_object(
        'id', a.id, 'admin_id', a.admin_id, 'action', a.action, 'model', a.model,
        'object_id', a.object_id, 'changes', a.changes, 'created_at', chatd_ts(a.created_at))
$$;

-- `search` as an ILIKE pattern: a substring, with %, _ and \ matching literally.
CREATE FUNCTION chatd_admin_like(q text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT '%' || replace(replace(replace(btrim(q), '\', '\\'), '%', '\%'), '_', '\_') || '%'
$$;

-- The description of one model's list: table, row function, CSV header,
-- search expression, sortable columns (name → index-backed expression) and
-- filters (column → kind). NULL table: no such model.
CREATE FUNCTION chatd_admin_model(p_model text, OUT tbl text, OUT rowfn text, OUT header text,
                                  OUT search text, OUT sorts jsonb, OUT filters jsonb,
                                  OUT def_sort text)
LANGUAGE sql IMMUTABLE AS $$
    SELECT m.tbl, m.rowfn, m.header, m.search, m.sorts, m.filters, m.def_sort FROM (VALUES
      ('users', 'users', 'chatd_admin_user',
       'id,email,username,first_name,last_name,avatar_url,bio,is_active,is_superuser,'
       'is_verified,is_online,last_seen,created_at,updated_at',
       '(t.username || '' '' || t.email || '' '' || coalesce(t.first_name, '''') || '' '' || '
       'coalesce(t.last_name, ''''))',
       '{"created_at":"t.created_at","username":"lower(t.username)","email":"lower(t.email)",'
       '"last_seen":"t.last_seen"}'::jsonb,
       '{"is_active":"bool","is_verified":"bool","is_superuser":"bool","is_online":"bool"}'::jsonb,
       '-created_at'),
      ('messages', 'messages', 'chatd_admin_message',
       'id,seq,content,sender_id,receiver_id,group_id,media_url,media_type,is_read,created_at,'
       'edited_at,is_deleted',
       't.content',
       '{"created_at":"t.created_at","seq":"t.seq"}'::jsonb,
       '{"is_read":"bool","sender_id":"uuid","receiver_id":"uuid","group_id":"uuid"}'::jsonb,
       '-created_at'),
      ('groups', 'groups', 'chatd_admin_group',
       'id,name,description,avatar_url,creator_id,is_private,created_at,updated_at,member_count',
       '(t.name || '' '' || coalesce(t.description, ''''))',
       '{"created_at":"t.created_at","updated_at":"t.updated_at","name":"lower(t.name)"}'::jsonb,
       '{"is_private":"bool","creator_id":"uuid"}'::jsonb,
       '-created_at'),
      ('group_members', 'group_members', 'chatd_admin_group_member',
       'id,group_id,user_id,role,joined_at',
       NULL,
       '{"joined_at":"t.joined_at"}'::jsonb,
       '{"role":"role","group_id":"uuid","user_id":"uuid"}'::jsonb,
       '-joined_at'),
      ('contacts', 'contacts', 'chatd_admin_contact',
       'id,user_id,contact_id,nickname,created_at',
       't.nickname',
       '{"created_at":"t.created_at"}'::jsonb,
       '{"user_id":"uuid"}'::jsonb,
       '-created_at'),
      ('audit', 'admin_audit', 'chatd_admin_audit_row',
       'id,admin_id,action,model,object_id,changes,created_at',
       NULL,
       '{"created_at":"t.created_at"}'::jsonb,
       '{"admin_id":"uuid","object_id":"uuid","model":"text","action":"text"}'::jsonb,
       '-created_at')
    ) AS m(name, tbl, rowfn, header, search, sorts, filters, def_sort)
    WHERE m.name = p_model
$$;

-- A filter value's SQL condition, or NULL when the value does not fit the kind.
CREATE FUNCTION chatd_admin_filter_sql(p_col text, p_kind text, p_val text) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE
        WHEN p_kind = 'bool' AND p_val IN ('true', 'false')
            THEN format('t.%I = ($2->>%L)::boolean', p_col, p_col)
        WHEN p_kind = 'uuid'
             AND p_val ~* '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$'
            THEN format('t.%I = ($2->>%L)::uuid', p_col, p_col)
        WHEN p_kind = 'role' AND p_val IN ('admin', 'member')
            THEN format('t.%I = ($2->>%L)', p_col, p_col)
        WHEN p_kind = 'text' AND length(p_val) BETWEEN 1 AND 50
            THEN format('t.%I = ($2->>%L)', p_col, p_col)
    END
$$;

-- The statement parts of a list: "FROM ... WHERE ..." and "ORDER BY ...",
-- with $1 = the search text and $2 = the filters object. bad names the query
-- parameter that is wrong ('model' for an unknown model), msg says why.
CREATE FUNCTION chatd_admin_query(p_model text, p_search text, p_sort text, p_filters jsonb,
                                  OUT bad text, OUT msg text, OUT rowfn text, OUT header text,
                                  OUT sql_from text, OUT sql_order text)
LANGUAGE plpgsql STABLE AS $$
DECLARE
    m record;
    w text[] := ARRAY['true'];
    f record;
    cond text;
    key text := coalesce(nullif(p_sort, ''), NULL);
    dir text := 'ASC';
    expr text;
BEGIN
    SELECT * INTO m FROM chatd_admin_model(p_model);
    IF m.tbl IS NULL THEN
        bad := 'model'; msg := 'Unknown model'; RETURN;
    END IF;
    FOR f IN SELECT * FROM jsonb_each_text(coalesce(p_filters, '{}')) LOOP
        IF NOT m.filters ? f.key THEN
            bad := f.key; msg := 'Unknown filter column'; RETURN;
        END IF;
        cond := chatd_admin_filter_sql(f.key, m.filters->>f.key, f.value);
        IF cond IS NULL THEN
            bad := f.key; msg := 'Invalid filter value'; RETURN;
        END IF;
        w := w || cond;
    END LOOP;
    IF btrim(coalesce(p_search, '')) <> '' THEN
        IF m.search IS NULL THEN
            bad := 'search'; msg := 'Search is not supported on this model'; RETURN;
        END IF;
        w := w || (m.search || ' ILIKE chatd_admin_like($1)');
    END IF;
    key := coalesce(key, m.def_sort);
    IF left(key, 1) = '-' THEN
        key := substr(key, 2); dir := 'DESC';
    END IF;
    expr := m.sorts->>key;
    IF expr IS NULL THEN
        bad := 'sort'; msg := 'Unknown sort column'; RETURN;
    END IF;
    rowfn := m.rowfn;
    header := m.header;
    sql_from := format('FROM %I t WHERE %s', m.tbl, array_to_string(w, ' AND '));
    sql_order := format('ORDER BY %s %s, t.id %s', expr, dir, dir);
END
$$;

-- GET /api/v1/admin/{model}: {"items": [...], "total": N}. total is exact up
-- to 10000 and reads 10001 beyond (counting 1M rows per page would scan them).
CREATE FUNCTION chatd_admin_list(p_model text, p_search text, p_sort text, p_filters jsonb,
                                 p_offset int, p_limit int,
                                 OUT bad text, OUT msg text, OUT body json)
LANGUAGE plpgsql STABLE AS $$
DECLARE
    q record;
    items json;
    total bigint;
BEGIN
    SELECT * INTO q FROM chatd_admin_query(p_model, p_search, p_sort, p_filters);
    IF q.bad IS NOT NULL THEN
        bad := q.bad; msg := q.msg; RETURN;
    END IF;
    EXECUTE format('SELECT coalesce(json_agg(x.j), ''[]'') FROM (SELECT %s(t) AS j %s %s '
                   'LIMIT $3 OFFSET $4) x', q.rowfn, q.sql_from, q.sql_order)
        INTO items USING p_search, p_filters, p_limit, p_offset;
    EXECUTE format('SELECT count(*) FROM (SELECT 1 %s LIMIT 10001) c', q.sql_from)
        INTO total USING p_search, p_filters;
    body := json_build_object('items', items, 'total', total);
END
$$;

-- GET /api/v1/admin/{model}/{id}: the row, NULL when there is none.
CREATE FUNCTION chatd_admin_get(p_model text, p_id uuid) RETURNS json
LANGUAGE plpgsql STABLE AS $$
DECLARE
    m record;
    j json;
BEGIN
    SELECT * INTO m FROM chatd_admin_model(p_model);
    IF m.tbl IS NULL THEN
        RETURN NULL;
    END IF;
    EXECUTE format('SELECT %s(t) FROM %I t WHERE t.id = $1', m.rowfn, m.tbl) INTO j USING p_id;
    RETURN j;
END
$$;

CREATE FUNCTION chatd_admin_stats() RETURNS json
LANGUAGE sql STABLE AS $$
    SELECT json_build_object(
        'users', (SELECT count(*) FROM users),
        'active_users', (SELECT count(*) FROM users WHERE is_active),
        'online', (SELECT count(*) FROM users WHERE is_online),
        'groups', (SELECT count(*) FROM groups),
        'messages', (SELECT count(*) FROM messages),
        'messages_24h', (SELECT count(*) FROM messages
                         WHERE created_at > now() - interval '24 hours'))
$$;

-- One audit row. changes never holds a password or a hash: callers pass only
-- the fields of API.md's PATCH lists, and a password change as a marker.
CREATE FUNCTION chatd_admin_audit(p_admin uuid, p_action text, p_model text, p_object uuid,
                                  p_changes jsonb) RETURNS void
LANGUAGE sql AS $$
    INSERT INTO admin_audit (admin_id, action, model, object_id, changes)
    VALUES (p_admin, p_action, p_model, p_object,
            coalesce(p_changes, '{}') - 'hashed_password' - 'password')
$$;

-- {"field": {"old": ..., "new": ...}} for each key of p_keys that differs.
CREATE FUNCTION chatd_admin_diff(p_old jsonb, p_new jsonb, p_keys jsonb) RETURNS jsonb
LANGUAGE sql IMMUTABLE AS $$
    SELECT coalesce(jsonb_object_agg(k, jsonb_build_object('old', p_old->k, 'new', p_new->k)),
                    '{}')
    FROM jsonb_object_keys(p_keys) k
    WHERE k NOT IN ('hashed_password', 'password') AND p_old->k IS DISTINCT FROM p_new->k
$$;

-- PATCH /api/v1/admin/users/{id} with the checked fields of p_set (a key
-- present with null clears a nullable column; email/username are never null).
CREATE FUNCTION chatd_admin_user_update(p_admin uuid, p_id uuid, p_set jsonb,
                                        OUT hit boolean, OUT deactivated boolean,
                                        OUT body json)
LANGUAGE plpgsql AS $$
DECLARE
    o users;
    n users;
BEGIN
    SELECT * INTO o FROM users WHERE id = p_id FOR UPDATE;
    hit := FOUND;
    IF NOT hit THEN
        RETURN;
    END IF;
    UPDATE users SET
        email = coalesce(p_set->>'email', email),
        username = coalesce(p_set->>'username', username),
        first_name = CASE WHEN p_set ? 'first_name' THEN p_set->>'first_name' ELSE first_name END,
        last_name = CASE WHEN p_set ? 'last_name' THEN p_set->>'last_name' ELSE last_name END,
        bio = CASE WHEN p_set ? 'bio' THEN p_set->>'bio' ELSE bio END,
        avatar_url = CASE WHEN p_set ? 'avatar_url' THEN p_set->>'avatar_url' ELSE avatar_url END,
        is_active = coalesce((p_set->>'is_active')::boolean, is_active),
        is_verified = coalesce((p_set->>'is_verified')::boolean, is_verified),
        is_superuser = coalesce((p_set->>'is_superuser')::boolean, is_superuser),
        updated_at = now()
    WHERE id = p_id RETURNING * INTO n;
    PERFORM chatd_admin_audit(p_admin, 'update', 'users', p_id,
                              chatd_admin_diff(to_jsonb(o), to_jsonb(n), p_set));
    deactivated := o.is_active AND NOT n.is_active;
    body := chatd_admin_user(n);
END
$$;

CREATE FUNCTION chatd_admin_user_create(p_admin uuid, p_email text, p_username text, p_hash text,
                                        p_super boolean, p_verified boolean) RETURNS json
LANGUAGE plpgsql AS $$
DECLARE
    u users;
BEGIN
    INSERT INTO users (email, hashed_password, username, is_superuser, is_verified)
    VALUES (p_email, p_hash, p_username, p_super, p_verified) RETURNING * INTO u;
    PERFORM chatd_admin_audit(p_admin, 'create', 'users', u.id,
                              jsonb_build_object('email', u.email, 'username', u.username,
                                                 'is_superuser', u.is_superuser,
                                                 'is_verified', u.is_verified));
    RETURN chatd_admin_user(u);
END
$$;

-- PUT /api/v1/admin/users/{id}/password: the hash and the end of every
-- session in one statement (chatd_sessions_end), audited without the value.
CREATE FUNCTION chatd_admin_set_password(p_admin uuid, p_id uuid, p_hash text) RETURNS boolean
LANGUAGE plpgsql AS $$
BEGIN
    IF NOT chatd_sessions_end(p_id, NULL, p_hash) THEN
        RETURN false;
    END IF;
    PERFORM chatd_admin_audit(p_admin, 'set_password', 'users', p_id,
                              '{"password_changed": true}');
    RETURN true;
END
$$;

CREATE FUNCTION chatd_admin_group_update(p_admin uuid, p_id uuid, p_set jsonb) RETURNS json
LANGUAGE plpgsql AS $$
DECLARE
    o groups;
    n groups;
BEGIN
    SELECT * INTO o FROM groups WHERE id = p_id FOR UPDATE;
    IF NOT FOUND THEN
        RETURN NULL;
    END IF;
    UPDATE groups SET
        name = coalesce(p_set->>'name', name),
        description = CASE WHEN p_set ? 'description' THEN p_set->>'description'
                           ELSE description END,
        is_private = coalesce((p_set->>'is_private')::boolean, is_private),
        updated_at = now()
    WHERE id = p_id RETURNING * INTO n;
    PERFORM chatd_admin_audit(p_admin, 'update', 'groups', p_id,
                              chatd_admin_diff(to_jsonb(o), to_jsonb(n), p_set));
    RETURN chatd_admin_group(n);
END
$$;

-- PATCH /api/v1/admin/group_members/{id}: chatd_group_set_role as a
-- superuser (the last-admin rule holds), audited when the role changed.
CREATE FUNCTION chatd_admin_member_role(p_admin uuid, p_id uuid, p_role text,
                                        OUT status text, OUT changed boolean, OUT gid uuid,
                                        OUT uid uuid, OUT body json)
LANGUAGE plpgsql AS $$
DECLARE
    r record;
    n group_members;
BEGIN
    SELECT m.group_id, m.user_id INTO gid, uid FROM group_members m WHERE m.id = p_id;
    IF NOT FOUND THEN
        status := 'no_member'; RETURN;
    END IF;
    SELECT * INTO r FROM chatd_group_set_role(gid, uid, p_admin, true, p_role);
    status := r.status;
    changed := coalesce(r.changed, false);
    IF status <> 'ok' THEN
        RETURN;
    END IF;
    IF changed THEN
        PERFORM chatd_admin_audit(p_admin, 'update', 'group_members', p_id,
            jsonb_build_object('role', jsonb_build_object(
                'old', CASE p_role WHEN 'admin' THEN 'member' ELSE 'admin' END, 'new', p_role)));
    END IF;
    SELECT * INTO n FROM group_members m WHERE m.id = p_id;
    body := chatd_admin_group_member(n);
END
$$;

-- DELETE of a message, as its owner's delete: content and media cleared.
CREATE FUNCTION chatd_admin_message_delete(p_admin uuid, p_id uuid,
                                           OUT hit boolean, OUT seq bigint, OUT sender uuid,
                                           OUT receiver uuid, OUT gid uuid)
LANGUAGE plpgsql AS $$
BEGIN
    UPDATE messages m SET content = '', media_url = NULL, media_type = NULL,
                          deleted_at = coalesce(m.deleted_at, now())
    WHERE m.id = p_id RETURNING m.seq, m.sender_id, m.receiver_id, m.group_id
    INTO seq, sender, receiver, gid;
    hit := FOUND;
    IF hit THEN
        PERFORM chatd_admin_audit(p_admin, 'delete', 'messages', p_id,
                                  jsonb_build_object('sender_id', sender));
    END IF;
END
$$;

-- DELETE of a group; members: the first 5000 member ids before the delete
-- (space-separated), for their member_removed events.
CREATE FUNCTION chatd_admin_group_delete(p_admin uuid, p_id uuid,
                                         OUT hit boolean, OUT members text)
LANGUAGE plpgsql AS $$
DECLARE
    g groups;
BEGIN
    SELECT string_agg(x.user_id::text, ' ') INTO members
    FROM (SELECT m.user_id FROM group_members m WHERE m.group_id = p_id LIMIT 5000) x;
    DELETE FROM groups WHERE id = p_id RETURNING * INTO g;
    hit := FOUND;
    IF hit THEN
        PERFORM chatd_admin_audit(p_admin, 'delete', 'groups', p_id,
                                  jsonb_build_object('name', g.name));
    END IF;
    members := coalesce(members, '');
END
$$;

-- DELETE of a membership, as a removal by a superuser (last-admin rule included).
CREATE FUNCTION chatd_admin_member_remove(p_admin uuid, p_id uuid,
                                          OUT status text, OUT gid uuid, OUT uid uuid)
LANGUAGE plpgsql AS $$
BEGIN
    SELECT m.group_id, m.user_id INTO gid, uid FROM group_members m WHERE m.id = p_id;
    IF NOT FOUND THEN
        status := 'no_member'; RETURN;
    END IF;
    status := chatd_group_remove_member(gid, uid, p_admin, true);
    IF status = 'ok' THEN
        PERFORM chatd_admin_audit(p_admin, 'delete', 'group_members', p_id,
                                  jsonb_build_object('group_id', gid, 'user_id', uid));
    END IF;
END
$$;

CREATE FUNCTION chatd_admin_contact_delete(p_admin uuid, p_id uuid) RETURNS boolean
LANGUAGE plpgsql AS $$
DECLARE
    c contacts;
BEGIN
    DELETE FROM contacts WHERE id = p_id RETURNING * INTO c;
    IF NOT FOUND THEN
        RETURN false;
    END IF;
    PERFORM chatd_admin_audit(p_admin, 'delete', 'contacts', p_id,
                              jsonb_build_object('user_id', c.user_id,
                                                 'contact_id', c.contact_id));
    RETURN true;
END
$$;
