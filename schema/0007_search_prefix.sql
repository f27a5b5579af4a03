-- chatd_user_search() was rewritten inside 0003_social.sql after databases had
-- run it, so those kept the old one (issue 8 item 11). Re-created here from its
-- current definition, with the prefix bound fixed (issue 12): the upper end of
-- a prefix range is the prefix with its last character incremented, compared
-- byte-wise (~<~, the text_pattern_ops indexes), instead of the prefix followed
-- by chr(1114111) (U+10FFFF, a noncharacter that strict UTF-8 decoders refuse
-- when a plan shows the literal).

-- The least string above every string that starts with p (byte-wise, which for
-- UTF-8 is code point order); NULL when none exists (p empty or all U+10FFFF).
-- The surrogates U+D800..U+DFFF are no characters: U+D7FF steps to U+E000.
CREATE OR REPLACE FUNCTION chatd_prefix_upper(p text) RETURNS text
LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE AS $$
DECLARE
    c int;
BEGIN
    WHILE p <> '' LOOP
        c := ascii(right(p, 1));
        p := left(p, -1);
        IF c < 1114111 THEN
            RETURN p || chr(CASE WHEN c = 55295 THEN 57344 ELSE c + 1 END);
        END IF;
    END LOOP;
    RETURN NULL;
END
$$;

CREATE OR REPLACE FUNCTION chatd_user_search(caller uuid, caller_super boolean, q text, lim int)
RETURNS json
LANGUAGE plpgsql STABLE
SET enable_seqscan = off
AS $fn$
DECLARE
    lq text := lower(q);
    -- An all-U+10FFFF prefix has no upper bound: it matches only itself then.
    hi text := coalesce(chatd_prefix_upper(lower(q)), lower(q) || ' ');
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
