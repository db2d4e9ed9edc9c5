-- 0003 archive: message archives (XEP-0313) and their archiving preferences (XEP-0441).
-- An archive belongs to an owner JID: an account's bare JID today, a MUC room's JID later; so there is
-- no foreign key to accounts and the MAM module deletes an account's archive with the account.

CREATE TABLE archive (
    id INTEGER PRIMARY KEY AUTOINCREMENT,   -- arrival order; paging walks it
    owner TEXT NOT NULL,                    -- bare JID whose archive this is
    archive_id TEXT NOT NULL,               -- the opaque XEP-0359 stanza-id given to clients
    with_jid TEXT NOT NULL,                 -- bare JID of the other party
    with_resource TEXT NOT NULL DEFAULT '', -- and its resource, for 'with' filters on a full JID
    stamp DOUBLE PRECISION NOT NULL,        -- seconds since the epoch, when it was archived
    stanza BLOB NOT NULL,
    UNIQUE (owner, archive_id)
);

CREATE INDEX archive_by_owner ON archive (owner, id);
CREATE INDEX archive_by_with ON archive (owner, with_jid, id);
CREATE INDEX archive_by_stamp ON archive (stamp);

CREATE TABLE archive_prefs (
    owner TEXT NOT NULL PRIMARY KEY,
    default_mode TEXT NOT NULL CHECK (default_mode IN ('always', 'never', 'roster')),
    always_jids TEXT NOT NULL DEFAULT '[]',  -- JSON array of JIDs always archived
    never_jids TEXT NOT NULL DEFAULT '[]'    -- JSON array of JIDs never archived
);
