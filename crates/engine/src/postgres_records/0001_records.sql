-- Records agents created through warden (issue 14). docs/records.md
-- describes the table for the platform's own queries. Append new steps as
-- new files; never edit a released one.
CREATE TABLE warden_records (
    server      text        NOT NULL,
    kind        text        NOT NULL,
    record_id   text        NOT NULL,
    via_agent   boolean     NOT NULL,
    agent       text,
    user_name   text        NOT NULL,
    session_id  text        NOT NULL,
    created_at  timestamptz NOT NULL,
    decision_id text        NOT NULL,
    PRIMARY KEY (server, kind, record_id)
);
CREATE INDEX warden_records_created_at ON warden_records (created_at);
CREATE INDEX warden_records_user ON warden_records (user_name, created_at);
COMMENT ON TABLE warden_records IS
    'Records created by calls warden relayed: the first creation of (server, kind, record_id) wins';
COMMENT ON COLUMN warden_records.via_agent IS
    'the creating call came through the agent path';
COMMENT ON COLUMN warden_records.decision_id IS
    'the id of the decision that let the creating call through (decision log `decision_id`)';
