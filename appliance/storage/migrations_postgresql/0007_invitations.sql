-- 0007 invitations (issue 16), the PostgreSQL twin of migrations/0007_invitations.sql: links and preauth
-- tokens that create accounts (XEP-0401/XEP-0379/XEP-0445), claimed one use at a time by a single UPDATE.
-- Only the SHA-256 of a token is kept. `groups_json` is a JSON array of roster group names.

CREATE TABLE invitations (
    id TEXT NOT NULL PRIMARY KEY,
    digest TEXT NOT NULL UNIQUE,
    host TEXT NOT NULL,
    creator TEXT NOT NULL,
    inviter TEXT NOT NULL DEFAULT '',
    username TEXT NOT NULL DEFAULT '',
    groups_json TEXT NOT NULL DEFAULT '[]',
    max_uses INTEGER NOT NULL DEFAULT 1,
    uses INTEGER NOT NULL DEFAULT 0,
    created_at DOUBLE PRECISION NOT NULL,
    expires_at DOUBLE PRECISION NOT NULL,
    CHECK (uses >= 0 AND uses <= max_uses)
);

CREATE INDEX invitations_host ON invitations (host, username);

CREATE TABLE invitation_uses (
    invitation_id TEXT NOT NULL REFERENCES invitations (id) ON DELETE CASCADE,
    jid TEXT NOT NULL,
    used_at DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (invitation_id, jid)
);
