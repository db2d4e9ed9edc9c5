-- 0005 administration (issue 15), the PostgreSQL twin of migrations/0005_admin.sql: accounts an
-- administrator disabled (XEP-0133 disable-user: they cannot log in until re-enabled; their data stays),
-- and small per-host documents such as the message of the day.

CREATE TABLE disabled_accounts (
    host TEXT NOT NULL,
    username TEXT NOT NULL,
    disabled_at DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (host, username),
    FOREIGN KEY (host, username) REFERENCES accounts (host, username) ON DELETE CASCADE
);

CREATE TABLE host_kv (
    host TEXT NOT NULL,
    store TEXT NOT NULL,
    key_name TEXT NOT NULL,
    value BYTEA NOT NULL,
    updated_at DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (host, store, key_name)
);
