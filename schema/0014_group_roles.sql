-- PATCH /api/v1/groups/{gid}/members/{target} {"role"} (API.md "Groups",
-- issue 11): an admin, the creator or a superuser sets a member's role.
-- Returns status 'ok' with the member's GroupMemberRead (member) and whether
-- the role changed (changed: the event is published only then), or
-- 'no_group' (missing or invisible), 'forbidden', 'no_member' or
-- 'last_admin' (demoting the only admin while other members remain, the rule
-- chatd_group_remove_member applies to leaving). The group row is locked
-- first, as chatd_group_remove_member does, so two admins demoting each other
-- at once, or one demoting while the other leaves, cannot both pass the
-- last-admin check.
CREATE OR REPLACE FUNCTION chatd_group_set_role(gid uuid, target uuid, caller uuid,
                                                caller_super boolean, new_role text,
                                                OUT status text, OUT changed boolean,
                                                OUT member json)
LANGUAGE plpgsql AS $$
DECLARE
    a record;
    m group_members;
BEGIN
    changed := false;
    PERFORM 1 FROM groups g WHERE g.id = gid FOR NO KEY UPDATE;
    SELECT * INTO a FROM chatd_group_acl(gid, caller, caller_super);
    IF NOT FOUND OR NOT a.visible THEN
        status := 'no_group'; RETURN;
    END IF;
    IF NOT a.manage THEN
        status := 'forbidden'; RETURN;
    END IF;
    SELECT * INTO m FROM group_members gm WHERE gm.group_id = gid AND gm.user_id = target;
    IF NOT FOUND THEN
        status := 'no_member'; RETURN;
    END IF;
    IF m.role = 'admin' AND new_role <> 'admin'
       AND NOT EXISTS (SELECT 1 FROM group_members x
                       WHERE x.group_id = gid AND x.role = 'admin' AND x.user_id <> target)
       AND EXISTS (SELECT 1 FROM group_members x WHERE x.group_id = gid AND x.user_id <> target)
    THEN
        status := 'last_admin'; RETURN;
    END IF;
    IF m.role IS DISTINCT FROM new_role THEN
        UPDATE group_members gm SET role = new_role WHERE gm.id = m.id RETURNING * INTO m;
        UPDATE groups g SET updated_at = now() WHERE g.id = gid;
        changed := true;
    END IF;
    status := 'ok';
    member := (SELECT chatd_member_read(m, u, caller, caller_super) FROM users u
               WHERE u.id = m.user_id);
END
$$;
