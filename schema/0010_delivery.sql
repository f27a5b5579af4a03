-- Issue 8 item 6: a replay batch bounded by bytes as well as rows, so one
-- wsd connection never holds more than about p_max_bytes of messages from a
-- batch (the three-argument chatd_sync stays for older callers). Rows are
-- kept while the bytes before them are under p_max_bytes, so a batch has at
-- least one row however large; `more` is true when rows were left out (by
-- the row limit or the byte limit): read again above the last seq.
CREATE OR REPLACE FUNCTION chatd_sync(p_user uuid, p_since bigint, p_limit int, p_max_bytes int)
RETURNS TABLE (seq bigint, id uuid, msg json, more boolean)
LANGUAGE sql STABLE AS $$
    SELECT x.seq, x.id, x.msg, x.total = p_limit OR x.kept < x.total
    FROM (SELECT b.*, count(*) OVER () AS total,
                 count(*) FILTER (WHERE b.before < p_max_bytes) OVER () AS kept
          FROM (SELECT s.seq, s.id, s.msg,
                       coalesce(sum(octet_length(s.msg::text)) OVER (
                           ORDER BY s.seq ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING), 0)
                           AS before
                FROM chatd_sync(p_user, p_since, p_limit) s) b) x
    WHERE x.before < p_max_bytes
    ORDER BY x.seq
$$;
