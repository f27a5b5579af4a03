-- A session-level advisory lock can be granted and still end in an error:
-- when its holder lets go just as the waiter's lock_timeout (or a cancel)
-- fires, Postgres grants the lock in shared memory and the waiter, on
-- waking, raises "canceling statement due to lock timeout" while keeping
-- the lock (LockErrorCleanup keeps a lock granted meanwhile). 0015's and
-- 0018's handlers tracked what they held in a variable set after the lock
-- call returned, so they missed that lock: the backend kept the gate (every
-- writer of the deployment then 503 "Database busy" until that connection
-- died) or a session lock on a marker key (read as a writer in flight:
-- chatd_stable_seq() stuck, live delivery stopped). Seen in CI by t/4020;
-- reproduced on purpose by t/4025.
--
-- The handlers now ask the lock table what this backend holds and release
-- exactly that. These functions only ever take these keys in session mode
-- and release them before returning, so whatever is held at the handler is
-- theirs.

-- Releases every session-level hold of advisory key (a, b) in mode m
-- ('ShareLock' or 'ExclusiveLock') that this backend has.
CREATE OR REPLACE FUNCTION chatd_advisory_release(a bigint, b bigint, m text) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    -- pg_locks shows one row per mode, not the count: unlock until it is gone
    -- (or until an unlock finds nothing, e.g. a transaction-level hold).
    WHILE EXISTS (SELECT 1 FROM pg_locks l
                  WHERE l.pid = pg_backend_pid() AND l.locktype = 'advisory'
                    AND l.objsubid = 2 AND l.classid::bigint = a AND l.objid::bigint = b
                    AND l.granted AND l.mode = m) LOOP
        IF m = 'ShareLock' THEN
            EXIT WHEN NOT pg_advisory_unlock_shared(a::int, b::int);
        ELSE
            EXIT WHEN NOT pg_advisory_unlock(a::int, b::int);
        END IF;
    END LOOP;
END
$$;

CREATE OR REPLACE FUNCTION chatd_seq_take() RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    s bigint;
BEGIN
    BEGIN
        PERFORM pg_advisory_lock_shared(7001, 15);
        s := nextval(pg_get_serial_sequence('messages', 'seq')::regclass);
        IF coalesce(current_setting('chatd.seq_marked', true), '') <> 'on' THEN
            PERFORM pg_advisory_xact_lock(chatd_seq_marker_hi(s), (s & 2147483647)::int);
            PERFORM set_config('chatd.seq_marked', 'on', true);
        END IF;
        PERFORM pg_advisory_unlock_shared(7001, 15);
    EXCEPTION WHEN others OR query_canceled THEN
        PERFORM chatd_advisory_release(7001, 15, 'ShareLock');
        RAISE;
    END;
    RETURN s;
END
$$;

CREATE OR REPLACE FUNCTION chatd_stable_seq() RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    l bigint;
    m bigint;
BEGIN
    BEGIN
        PERFORM pg_advisory_lock(7001, 15);
        l := coalesce(pg_sequence_last_value(pg_get_serial_sequence('messages', 'seq')::regclass),
                      0);
        SELECT min(((k.classid::bigint - 1130000000) << 31) | k.objid::bigint) INTO m
        FROM pg_locks k
        WHERE k.locktype = 'advisory' AND k.objsubid = 2 AND k.granted
          AND k.classid::bigint >= 1130000000
          AND k.database = (SELECT d.oid FROM pg_database d WHERE d.datname = current_database());
        PERFORM pg_advisory_unlock(7001, 15);
    EXCEPTION WHEN others OR query_canceled THEN
        PERFORM chatd_advisory_release(7001, 15, 'ExclusiveLock');
        RAISE;
    END;
    RETURN least(l, coalesce(m - 1, l));
END
$$;

CREATE OR REPLACE FUNCTION chatd_wait_stable(p_seq bigint) RETURNS boolean
LANGUAGE plpgsql AS $$
DECLARE
    keys bigint[];
    k bigint;
BEGIN
    BEGIN
        PERFORM pg_advisory_lock(7001, 15);
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
        FOREACH k IN ARRAY coalesce(keys, '{}'::bigint[]) LOOP
            PERFORM pg_advisory_lock_shared(chatd_seq_marker_hi(k), (k & 2147483647)::int);
            PERFORM pg_advisory_unlock_shared(chatd_seq_marker_hi(k), (k & 2147483647)::int);
        END LOOP;
    EXCEPTION WHEN lock_not_available OR query_canceled THEN
        -- Session locks outlive a subtransaction's abort: release what is held.
        PERFORM chatd_advisory_release(7001, 15, 'ExclusiveLock');
        IF k IS NOT NULL THEN
            PERFORM chatd_advisory_release(chatd_seq_marker_hi(k), k & 2147483647, 'ShareLock');
        END IF;
        RETURN false;
    WHEN others THEN
        PERFORM chatd_advisory_release(7001, 15, 'ExclusiveLock');
        IF k IS NOT NULL THEN
            PERFORM chatd_advisory_release(chatd_seq_marker_hi(k), k & 2147483647, 'ShareLock');
        END IF;
        RAISE;
    END;
    RETURN true;
END
$$;
