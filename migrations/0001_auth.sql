-- Auth: users and their refresh tokens.
CREATE TABLE users (
    user_id        uuid PRIMARY KEY,
    email          text NOT NULL,
    password_hash  text NOT NULL,
    shard          integer NOT NULL DEFAULT 0,
    created_at     timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT users_email_normalised CHECK (email = lower(btrim(email)))
);
CREATE UNIQUE INDEX users_email_key ON users (email);

-- Refresh tokens are stored as SHA-256 hashes, never in clear. Every login starts a family;
-- each Refresh uses up one token and issues its successor in the same family. Presenting a
-- used token again revokes the whole family (a stolen token was replayed).
CREATE TABLE refresh_tokens (
    token_hash   bytea PRIMARY KEY,
    user_id      uuid NOT NULL REFERENCES users (user_id) ON DELETE CASCADE,
    family_id    uuid NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    expires_at   timestamptz NOT NULL,
    used_at      timestamptz,
    revoked_at   timestamptz
);
CREATE INDEX refresh_tokens_family_idx ON refresh_tokens (family_id);
CREATE INDEX refresh_tokens_user_idx ON refresh_tokens (user_id);
