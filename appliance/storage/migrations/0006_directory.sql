-- 0006 directory (issue 15): shared-roster groups whose members see each other on their rosters (defined in
-- the console and the CLI; "everyone" makes every account of the host a member; a directory group name makes
-- the members of that LDAP group members), and the accounts an LDAP directory authenticates (no password or
-- SCRAM keys are kept for them: the row exists so their rosters, offline messages and archives have an owner).

CREATE TABLE shared_groups (
    host TEXT NOT NULL,
    name TEXT NOT NULL,                          -- shown as the roster group of its members' entries
    everyone BOOLEAN NOT NULL DEFAULT FALSE,     -- every account of the host is a member
    directory_group TEXT NOT NULL DEFAULT '',    -- an LDAP group (DN) whose members are members
    created_at DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (host, name)
);

CREATE TABLE shared_group_members (
    host TEXT NOT NULL,
    group_name TEXT NOT NULL,
    username TEXT NOT NULL,
    PRIMARY KEY (host, group_name, username),
    FOREIGN KEY (host, group_name) REFERENCES shared_groups (host, name) ON DELETE CASCADE ON UPDATE CASCADE,
    FOREIGN KEY (host, username) REFERENCES accounts (host, username) ON DELETE CASCADE
);

CREATE TABLE directory_accounts (
    host TEXT NOT NULL,
    username TEXT NOT NULL,
    dn TEXT NOT NULL,                            -- the entry that authenticated last
    synced_at DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (host, username),
    FOREIGN KEY (host, username) REFERENCES accounts (host, username) ON DELETE CASCADE
);
