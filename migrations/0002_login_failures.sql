-- Failed logins per email, registered or not: unknown emails are throttled exactly like known
-- ones, so the answer never tells whether an account exists. Kept in the database so the
-- backoff holds across Auth restarts and across Auth replicas.
CREATE TABLE login_failures (
    email            text PRIMARY KEY,
    failures         integer NOT NULL,
    last_failure_at  timestamptz NOT NULL,
    blocked_until    timestamptz NOT NULL
);
