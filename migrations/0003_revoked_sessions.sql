-- Sessions (logins: refresh-token families) ended before their access tokens expire, by
-- Logout or by a replayed refresh token. Access tokens name their session (claim `sid`);
-- every service refuses the tokens of a session listed here and ends the streams opened with
-- them. A row matters until the last access token of its session has expired (expires_at).
CREATE TABLE revoked_sessions (
    session_id  uuid PRIMARY KEY,
    -- clock_timestamp(): when the row was written, which followers read in order (with an
    -- overlap for transactions that commit out of order).
    revoked_at  timestamptz NOT NULL DEFAULT clock_timestamp(),
    expires_at  timestamptz NOT NULL
);
CREATE INDEX revoked_sessions_revoked_at_idx ON revoked_sessions (revoked_at);
