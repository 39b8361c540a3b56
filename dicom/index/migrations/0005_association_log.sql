-- The association log admins see: who connected, what they did, how it
-- ended. No patient identifiers. Kept like other logs (append-only).
CREATE TABLE association_log (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    association  text NOT NULL,                 -- the id in the server's log lines
    calling_ae   text NOT NULL,
    called_ae    text NOT NULL,
    peer         text NOT NULL,
    known_ae     boolean NOT NULL,
    opened       timestamptz NOT NULL,
    closed       timestamptz,
    outcome      text NOT NULL,                 -- released, aborted, rejected, idle-timeout …
    requests     integer NOT NULL DEFAULT 0,
    stored       integer NOT NULL DEFAULT 0,
    failed       integer NOT NULL DEFAULT 0,
    bytes_in     bigint NOT NULL DEFAULT 0,
    bytes_out    bigint NOT NULL DEFAULT 0,
    implementation text NOT NULL DEFAULT ''
);
CREATE INDEX association_log_opened ON association_log (opened DESC);
REVOKE UPDATE, DELETE, TRUNCATE ON association_log FROM molar_app;
