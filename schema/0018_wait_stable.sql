-- The seq of a REST 201 is a sync watermark again (README.seqpath.md): after
-- its statement committed, POST /api/v1/messages runs chatd_wait_stable(seq),
-- which returns once every seq below it is final (committed or never to
-- exist), i.e. once no in-flight marker below it is left.
--
-- The markers below seq are listed under the gate taken exclusively, as
-- chatd_stable_seq() does: no writer is then between its nextval and its
-- marker, so a lower seq without a marker at that moment is already final
-- (0015's argument). The gate is released before waiting: writers are never
-- held by a reader that waits.
--
-- Each marker is waited for with a session-level shared lock, released at
-- once: a transaction-level one would be held until the statement ends and be
-- read as a marker by chatd_stable_seq() (same key, granted), holding S back.
--
-- Returns false instead of failing when a wait hits lock_timeout or is
-- cancelled (statement_timeout): the caller's message is committed, so the
-- caller answers 201 either way and logs the lost guarantee.
CREATE OR REPLACE FUNCTION chatd_wait_stable(p_seq bigint) RETURNS boolean
LANGUAGE plpgsql AS $$
DECLARE
    keys bigint[];
    k bigint;
    gate boolean := false;
    held boolean := false;
BEGIN
    BEGIN
        PERFORM pg_advisory_lock(7001, 15);
        gate := true;
        SELECT array_agg(x.s ORDER BY x.s) INTO keys
        FROM (SELECT ((l.classid::bigint - 1130000000) << 31) | l.objid::bigint AS s
              FROM pg_locks l
              WHERE l.locktype = 'advisory' AND l.objsubid = 2 AND l.granted
                AND l.mode = 'ExclusiveLock'
                AND l.classid::bigint >= 1130000000
                AND l.database = (SELECT d.oid FROM pg_database d
                                  WHERE d.datname = current_database())) x
        WHERE x.s < p_seq;
        PERFORM pg_advisory_unlock(7001, 15);
        gate := false;
        FOREACH k IN ARRAY coalesce(keys, '{}'::bigint[]) LOOP
            PERFORM pg_advisory_lock_shared(chatd_seq_marker_hi(k), (k & 2147483647)::int);
            held := true;
            PERFORM pg_advisory_unlock_shared(chatd_seq_marker_hi(k), (k & 2147483647)::int);
            held := false;
        END LOOP;
    EXCEPTION WHEN lock_not_available OR query_canceled THEN
        -- Session locks outlive a subtransaction's abort: release what is held.
        IF gate THEN
            PERFORM pg_advisory_unlock(7001, 15);
        END IF;
        IF held THEN
            PERFORM pg_advisory_unlock_shared(chatd_seq_marker_hi(k), (k & 2147483647)::int);
        END IF;
        RETURN false;
    WHEN others THEN
        IF gate THEN
            PERFORM pg_advisory_unlock(7001, 15);
        END IF;
        IF held THEN
            PERFORM pg_advisory_unlock_shared(chatd_seq_marker_hi(k), (k & 2147483647)::int);
        END IF;
        RAISE;
    END;
    RETURN true;
END
$$;
