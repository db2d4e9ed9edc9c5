-- 0004 muc: multi-user chat rooms (XEP-0045) that outlive their occupants, and room affiliations.
-- `service` is the chat service's domain ("conference.example.org"), `name` the room's local part.
-- Temporary rooms are never written here. Room messages live in the archive (0003), owned by the room JID.

CREATE TABLE muc_rooms (
    service TEXT NOT NULL,
    name TEXT NOT NULL,
    config TEXT NOT NULL,                  -- JSON object of the room configuration
    subject TEXT NOT NULL DEFAULT '',
    subject_by TEXT NOT NULL DEFAULT '',   -- nickname that set the subject
    created_at DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (service, name)
);

CREATE TABLE muc_affiliations (
    service TEXT NOT NULL,
    name TEXT NOT NULL,
    jid TEXT NOT NULL,                     -- bare JID (or a domain)
    affiliation TEXT NOT NULL CHECK (affiliation IN ('owner', 'admin', 'member', 'outcast')),
    nick TEXT NOT NULL DEFAULT '',         -- registered nickname (jabber:iq:register), '' for none
    reason TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (service, name, jid),
    FOREIGN KEY (service, name) REFERENCES muc_rooms (service, name) ON DELETE CASCADE
);

CREATE INDEX muc_affiliations_by_jid ON muc_affiliations (service, jid, affiliation);
