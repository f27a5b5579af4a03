-- Users, contacts and groups (API.md "Users", "Contacts", "Groups"): the
-- indexes their queries need beyond 0001, and the JSON shapes and access
-- rules they share, built next to the rows (see 0002_json.sql).

-- User search with a 1-2 character query matches name prefixes (pg_trgm needs
-- 3 characters to serve a substring match); usernames use the 0001 index.
CREATE INDEX users_first_name_lower_pattern_idx ON users (lower(first_name) text_pattern_ops);
CREATE INDEX users_last_name_lower_pattern_idx ON users (lower(last_name) text_pattern_ops);
-- GET /api/v1/contacts pages a user's contacts in this order.
CREATE INDEX contacts_user_id_created_at_idx ON contacts (user_id, created_at, id);
-- GroupRead embeds the first members in joined order, however big the group.
CREATE INDEX group_members_group_id_joined_at_idx ON group_members (group_id, joined_at, id);

-- UserPublic as caller sees it: the email of themself, or of anyone for a superuser.
CREATE FUNCTION chatd_user_for(u users, caller uuid, caller_super boolean) RETURNS json
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT chatd_user_public(u, u.id = caller OR coalesce(caller_super, false))
$$;

-- ContactRead; u is the contact's user row.
CREATE FUNCTION chatd_contact_read(c contacts, u users, caller uuid, caller_super boolean)
RETURNS json
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT json_build_object(
        'id', c.id, 'user_id', c.user_id, 'contact_id', c.contact_id, 'nickname', c.nickname,
        'created_at', chatd_ts(c.created_at), 'contact', chatd_user_for(u, caller, caller_super))
$$;

-- GroupMemberRead; u is the member's user row.
CREATE FUNCTION chatd_member_read(m group_members, u users, caller uuid, caller_super boolean)
RETURNS json
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT json_build_object(
        'id', m.id, 'group_id', m.group_id, 'user_id', m.user_id, 'role', m.role,
        'joined_at', chatd_ts(m.joined_at), 'user', chatd_user_for(u, caller, caller_super))
$$;

-- GroupRead from its parts: the group row, its members' JSON list and count.
CREATE FUNCTION chatd_group_json(g groups, caller uuid, caller_super boolean, members json,
                                 member_count bigint)
RETURNS json
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT json_build_object(
        'id', g.id, 'name', g.name, 'description', g.description, 'avatar_url', g.avatar_url,
        'creator_id', g.creator_id, 'is_private', g.is_private,
        'created_at', chatd_ts(g.created_at), 'updated_at', chatd_ts(g.updated_at),
        'creator', (SELECT chatd_user_for(c, caller, caller_super) FROM users c
                    WHERE c.id = g.creator_id),
        'members', coalesce(members, '[]'::json), 'member_count', member_count)
$$;

-- GroupRead. members holds at most member_cap members, in joined order (served
-- by group_members_group_id_joined_at_idx); member_count counts them all.
CREATE FUNCTION chatd_group_read(g groups, caller uuid, caller_super boolean, member_cap int)
RETURNS json
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT chatd_group_json(g, caller, caller_super,
        (SELECT json_agg(chatd_member_read(x.m, x.u, caller, caller_super)
                         ORDER BY (x.m).joined_at, (x.m).id)
         FROM (SELECT m, u FROM group_members m JOIN users u ON u.id = m.user_id
               WHERE m.group_id = g.id ORDER BY m.joined_at, m.id LIMIT member_cap) x),
        (SELECT count(*) FROM group_members m WHERE m.group_id = g.id))
$$;

-- What caller may do with group gid; no row when there is no such group.
--   visible: may read it (public, or a member, the creator or a superuser);
--            an invisible group is "Group not found", not a 403.
--   manage:  may update it and add or remove members (an admin member, the
--            creator even after leaving, or a superuser).
CREATE FUNCTION chatd_group_acl(gid uuid, caller uuid, caller_super boolean)
RETURNS TABLE (id uuid, visible boolean, manage boolean, is_creator boolean, role text)
LANGUAGE sql STABLE AS $$
    SELECT g.id,
           NOT g.is_private OR m.id IS NOT NULL OR g.creator_id IS NOT DISTINCT FROM caller
               OR coalesce(caller_super, false),
           m.role IS NOT DISTINCT FROM 'admin' OR g.creator_id IS NOT DISTINCT FROM caller
               OR coalesce(caller_super, false),
           g.creator_id IS NOT DISTINCT FROM caller,
           m.role::text
    FROM groups g
    LEFT JOIN group_members m ON m.group_id = g.id AND m.user_id = caller
    WHERE g.id = gid
$$;

-- DELETE /api/v1/groups/{gid}/members/{target}. Returns 'ok', 'no_group'
-- (missing or invisible), 'forbidden', 'no_member' or 'last_admin'. The group
-- row is locked first, so two admins leaving at once cannot both pass the
-- last-admin check: each statement below runs on a fresh snapshot.
CREATE FUNCTION chatd_group_remove_member(gid uuid, target uuid, caller uuid, caller_super boolean)
RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    a record;
    t_role text;
BEGIN
    PERFORM 1 FROM groups g WHERE g.id = gid FOR NO KEY UPDATE;
    SELECT * INTO a FROM chatd_group_acl(gid, caller, caller_super);
    IF NOT FOUND OR NOT a.visible THEN
        RETURN 'no_group';
    END IF;
    IF NOT a.manage AND target <> caller THEN
        RETURN 'forbidden';
    END IF;
    SELECT m.role INTO t_role FROM group_members m WHERE m.group_id = gid AND m.user_id = target;
    IF NOT FOUND THEN
        RETURN 'no_member';
    END IF;
    IF t_role = 'admin'
       AND NOT EXISTS (SELECT 1 FROM group_members m
                       WHERE m.group_id = gid AND m.role = 'admin' AND m.user_id <> target)
       AND EXISTS (SELECT 1 FROM group_members m WHERE m.group_id = gid AND m.user_id <> target)
    THEN
        RETURN 'last_admin';
    END IF;
    DELETE FROM group_members m WHERE m.group_id = gid AND m.user_id = target;
    UPDATE groups g SET updated_at = now() WHERE g.id = gid;
    RETURN 'ok';
END
$$;

-- GET /api/v1/users/search: {"users": [UserPublic...], "total": N} for the
-- trimmed query q (1-100 characters; the caller answers blank ones itself).
--   rank 0: username starts with q, or the email is q (whole address only:
--           an exact lookup, so fragments never match an email);
--   rank 1: q appears in "username first_name last_name" (pg_trgm) when q has
--           3 consecutive letters or digits (what a trigram needs), else
--           first_name or last_name starts with q (their prefix indexes).
-- Then by username (byte order). Every branch is an index scan bounded by
-- 101 rows, so total is exact up to 100 and reported as 100 beyond; the
-- prefix branches walk their index in order and so keep the first 101 by
-- name, the substring one keeps any 101 (refine the query past that).
-- The substring statement is planned with the pattern at hand (EXECUTE ...
-- USING): a generic plan cannot use the trigram index for a LIKE pattern it
-- does not know, and fell back to scanning every active user. The others keep
-- cached plans (their range conditions use the indexes whatever the value).
-- Seq scans stay disabled so a common pattern never turns into a LIMIT-bounded
-- seq scan (t/2020-search-explain.t checks the plans on a seeded table).
-- LIKE wildcards and the escape character in q match literally.
CREATE FUNCTION chatd_user_search(caller uuid, caller_super boolean, q text, lim int)
RETURNS json
LANGUAGE plpgsql STABLE
SET enable_seqscan = off
AS $fn$
DECLARE
    lq text := lower(q);
    hi text := lower(q) || chr(1114111);
    pat text := '%' || replace(replace(replace(lower(q), '\', '\\'), '%', '\%'), '_', '\_') || '%';
    rank0 uuid[];
    rank1 uuid[];
    idxscan text;
    res json;
BEGIN
    rank0 := ARRAY(SELECT u.id FROM users u
                   WHERE lower(u.username) ~>=~ lq AND lower(u.username) ~<~ hi
                     AND u.is_active AND u.id <> caller
                   ORDER BY lower(u.username) USING ~<~ LIMIT 101)
          || ARRAY(SELECT u.id FROM users u
                   WHERE lower(u.email) = lq AND u.is_active AND u.id <> caller);
    IF cardinality(rank0) > 100 THEN
        rank1 := '{}';  -- the page and the capped total are rank 0's alone
    ELSIF lq ~ '[[:alnum:]]{3}' THEN
        -- Only the trigram index, as a bitmap: with plain index scans off, a
        -- walk of the whole is_active index filtered by LIKE is never chosen.
        idxscan := current_setting('enable_indexscan');
        PERFORM set_config('enable_indexscan', 'off', true);
        EXECUTE $q$SELECT ARRAY(SELECT u.id FROM users u
                   WHERE lower(u.username || ' ' || coalesce(u.first_name, '') || ' '
                               || coalesce(u.last_name, '')) LIKE $1
                     AND u.is_active AND u.id <> $2 LIMIT 101)$q$
            INTO rank1 USING pat, caller;
        PERFORM set_config('enable_indexscan', idxscan, true);
    ELSE
        rank1 := ARRAY(SELECT u.id FROM users u
                       WHERE lower(u.first_name) ~>=~ lq AND lower(u.first_name) ~<~ hi
                         AND u.is_active AND u.id <> caller
                       ORDER BY lower(u.first_name) USING ~<~ LIMIT 101)
              || ARRAY(SELECT u.id FROM users u
                       WHERE lower(u.last_name) ~>=~ lq AND lower(u.last_name) ~<~ hi
                         AND u.is_active AND u.id <> caller
                       ORDER BY lower(u.last_name) USING ~<~ LIMIT 101);
    END IF;
    WITH m AS (
        SELECT c.id, min(c.rk) AS rk
        FROM (SELECT unnest(rank0) AS id, 0 AS rk UNION ALL SELECT unnest(rank1), 1) c
        GROUP BY c.id
    ),
    page AS (
        SELECT u, m.rk FROM m JOIN users u ON u.id = m.id
        ORDER BY m.rk, lower(u.username) COLLATE "C", u.id
        LIMIT lim
    )
    SELECT json_build_object(
        'users', coalesce((SELECT json_agg(chatd_user_for(p.u, caller, caller_super)
                                           ORDER BY p.rk, lower((p.u).username) COLLATE "C", (p.u).id)
                           FROM page p), '[]'::json),
        'total', (SELECT least(count(*), 100) FROM m))
    INTO res;
    RETURN res;
END
$fn$;
