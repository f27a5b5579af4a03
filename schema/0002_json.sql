-- JSON shapes of API.md built where the rows are, so a handler runs one query
-- and hands its text to the client (and lists cost no per-row round trips).

-- ISO-8601 UTC with microseconds, e.g. 2026-11-23T22:47:58.123456Z
CREATE FUNCTION chatd_ts(t timestamptz) RETURNS text
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT to_char(t AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')
$$;

-- UserPublic; email only when show_email (the caller, or a superuser caller).
CREATE FUNCTION chatd_user_public(u users, show_email boolean) RETURNS json
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT json_build_object(
        'id', u.id, 'email', CASE WHEN show_email THEN u.email END,
        'username', u.username, 'first_name', u.first_name, 'last_name', u.last_name,
        'avatar_url', u.avatar_url, 'bio', u.bio, 'is_online', u.is_online,
        'last_seen', chatd_ts(u.last_seen), 'is_superuser', u.is_superuser)
$$;

-- UserRead of the fastapi-users routes.
CREATE FUNCTION chatd_user_read(u users) RETURNS json
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT json_build_object(
        'id', u.id, 'email', u.email, 'is_active', u.is_active,
        'is_superuser', u.is_superuser, 'is_verified', u.is_verified,
        'username', u.username, 'first_name', u.first_name, 'last_name', u.last_name,
        'avatar_url', u.avatar_url, 'bio', u.bio, 'is_online', u.is_online,
        'last_seen', chatd_ts(u.last_seen))
$$;

-- The `user` object of /api/v1/auth/register|login.
CREATE FUNCTION chatd_user_auth(u users) RETURNS json
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT json_build_object(
        'id', u.id, 'email', u.email, 'username', u.username,
        'first_name', u.first_name, 'last_name', u.last_name, 'avatar_url', u.avatar_url,
        'is_active', u.is_active, 'is_verified', u.is_verified, 'is_superuser', u.is_superuser)
$$;
