-- Outgoing account mail (reset and verify) leaves the request path: the HTTP
-- request only adds a row here; the mailer process of chat-fcgi (woken by
-- NOTIFY chatd_mail, else every second) issues the token at send time, so no
-- usable token is ever stored, sends it, and marks the row.
--
-- user_id has no foreign key on purpose: a request for an unknown address
-- inserts a 'skipped' row with no user, so both kinds of request do the same
-- work (see chatd_mail_enqueue); the mailer fails rows whose user is gone.
CREATE TABLE mail_queue (
    id bigserial PRIMARY KEY,
    kind text NOT NULL CHECK (kind IN ('reset', 'verify')),
    user_id uuid,
    to_addr varchar(320) NOT NULL,
    status text NOT NULL DEFAULT 'pending'
        CHECK (status IN ('pending', 'sent', 'failed', 'skipped')),
    attempts integer NOT NULL DEFAULT 0,
    next_at timestamptz NOT NULL DEFAULT now(),
    created_at timestamptz NOT NULL DEFAULT now(),
    sent_at timestamptz,
    last_error text
);
CREATE INDEX mail_queue_due_idx ON mail_queue (status, next_at);
CREATE INDEX mail_queue_created_idx ON mail_queue (created_at);

-- Queues a mail of kind to the account of p_email (any case) when it has one
-- to mail (active and, for 'verify', not yet verified); otherwise records a
-- 'skipped' row for the address as typed. Existing and unknown addresses thus
-- run the same statement with the same writes: one index probe, one INSERT
-- (same indexes, no foreign-key check), one NOTIFY, and an asynchronous
-- commit, so the answer's timing does not tell them apart. A mail lost to a
-- crash right after the 202 is asked for again.
CREATE OR REPLACE FUNCTION chatd_mail_enqueue(p_kind text, p_email text) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM set_config('synchronous_commit', 'off', true);
    INSERT INTO mail_queue (kind, user_id, to_addr, status)
    SELECT p_kind, u.id, coalesce(u.email, left(p_email, 320)),
           CASE WHEN u.id IS NULL THEN 'skipped' ELSE 'pending' END
    FROM (SELECT 1) one
    LEFT JOIN users u ON lower(u.email) = lower(p_email) AND u.is_active
                     AND (p_kind = 'reset' OR NOT u.is_verified);
    PERFORM pg_notify('chatd_mail', '');
END
$$;
