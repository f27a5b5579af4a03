-- Outgoing account mail (reset and verify) leaves the request path: the HTTP
-- request only queues a row here; the mailer process of chat-fcgi (woken by
-- NOTIFY chatd_mail, else every second) issues the token at send time, so no
-- usable token is ever stored, sends it, and marks the row.
CREATE TABLE mail_queue (
    id bigserial PRIMARY KEY,
    kind text NOT NULL CHECK (kind IN ('reset', 'verify')),
    user_id uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    to_addr varchar(320) NOT NULL,
    status text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'sent', 'failed')),
    attempts integer NOT NULL DEFAULT 0,
    next_at timestamptz NOT NULL DEFAULT now(),
    created_at timestamptz NOT NULL DEFAULT now(),
    sent_at timestamptz,
    last_error text
);
CREATE INDEX mail_queue_due_idx ON mail_queue (next_at) WHERE status = 'pending';
CREATE INDEX mail_queue_user_idx ON mail_queue (user_id);

-- Queues a mail of kind to the account of email (any case) when there is one
-- to mail: active, and for 'verify' not yet verified. Existing and unknown
-- addresses run the same statement: one index probe, an INSERT of zero or one
-- row, and a NOTIFY either way; the commit is asynchronous for both, so the
-- branch with a row does not wait for a WAL flush the other skips (answers are
-- timing-neutral). A mail lost to a crash right after the 202 is asked again.
CREATE OR REPLACE FUNCTION chatd_mail_enqueue(p_kind text, p_email text) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM set_config('synchronous_commit', 'off', true);
    INSERT INTO mail_queue (kind, user_id, to_addr)
    SELECT p_kind, u.id, u.email FROM users u
    WHERE lower(u.email) = lower(p_email) AND u.is_active
      AND (p_kind = 'reset' OR NOT u.is_verified);
    PERFORM pg_notify('chatd_mail', '');
END
$$;
