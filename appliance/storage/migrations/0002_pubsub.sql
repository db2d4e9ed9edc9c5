-- 0002 pubsub: nodes, affiliations, subscriptions and items of publish-subscribe services (XEP-0060).
-- `service` is the address that hosts the node: a pubsub component ("pubsub.example.org") or an
-- account's bare JID for PEP (XEP-0163). PEP data is removed with the account by the PEP module.

CREATE TABLE pubsub_nodes (
    service TEXT NOT NULL,
    node TEXT NOT NULL,
    config TEXT NOT NULL,              -- JSON object of pubsub#node_config field values
    created_at DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (service, node)
);

CREATE TABLE pubsub_affiliations (
    service TEXT NOT NULL,
    node TEXT NOT NULL,
    jid TEXT NOT NULL,                 -- bare JID
    affiliation TEXT NOT NULL CHECK (affiliation IN ('owner', 'publisher', 'publish-only', 'member', 'outcast')),
    PRIMARY KEY (service, node, jid),
    FOREIGN KEY (service, node) REFERENCES pubsub_nodes (service, node) ON DELETE CASCADE
);

CREATE INDEX pubsub_affiliations_by_jid ON pubsub_affiliations (service, jid);

CREATE TABLE pubsub_subscriptions (
    service TEXT NOT NULL,
    node TEXT NOT NULL,
    jid TEXT NOT NULL,                 -- the subscribed address, bare or full
    subid TEXT NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('subscribed', 'pending', 'unconfigured')),
    options TEXT NOT NULL DEFAULT '{}', -- JSON object of pubsub#subscribe_options values
    PRIMARY KEY (service, node, jid),
    FOREIGN KEY (service, node) REFERENCES pubsub_nodes (service, node) ON DELETE CASCADE
);

CREATE INDEX pubsub_subscriptions_by_jid ON pubsub_subscriptions (service, jid);

CREATE TABLE pubsub_items (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, -- publication order; republishing an id moves it last
    service TEXT NOT NULL,
    node TEXT NOT NULL,
    item_id TEXT NOT NULL,
    publisher TEXT NOT NULL,
    payload BLOB NOT NULL,             -- the serialized <item/> children (one element, or empty)
    published_at DOUBLE PRECISION NOT NULL,
    UNIQUE (service, node, item_id),
    FOREIGN KEY (service, node) REFERENCES pubsub_nodes (service, node) ON DELETE CASCADE
);

CREATE INDEX pubsub_items_by_node ON pubsub_items (service, node, seq);
