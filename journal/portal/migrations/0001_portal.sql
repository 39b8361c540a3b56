-- The parent portal's own data: the key that makes opaque child references,
-- and the message threads between families and the clinic (kept here until a
-- messaging module takes them over).

CREATE TABLE secret (
    id  integer PRIMARY KEY CHECK (id = 1),
    key bytea NOT NULL CHECK (length(key) >= 32)
);
INSERT INTO secret (id, key)
VALUES (1, decode(replace(gen_random_uuid()::text || gen_random_uuid()::text, '-', ''), 'hex'));
REVOKE INSERT, UPDATE, DELETE ON secret FROM molar_app;

-- One thread per child: messages from custody holders (or the young person)
-- and from clinic staff. Append-only: nothing is edited or deleted.
CREATE TABLE message (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id   bigint NOT NULL,
    person_id   bigint NOT NULL,          -- the child the thread is about
    author_user bigint NOT NULL,
    author_name text NOT NULL,
    from_clinic boolean NOT NULL,
    body        text NOT NULL CHECK (length(body) BETWEEN 1 AND 4000),
    created     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX message_thread ON message (tenant_id, person_id, created);
ALTER TABLE message ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON message
    USING (tenant_id = NULLIF(current_setting('molar.tenant', true), '')::bigint)
    WITH CHECK (tenant_id = NULLIF(current_setting('molar.tenant', true), '')::bigint);
REVOKE UPDATE, DELETE, TRUNCATE ON message FROM molar_app;

-- Contact and health information a family sends in; the clinic acknowledges
-- it (and copies it into the journal as "information from parents").
CREATE TABLE update_request (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id     bigint NOT NULL,
    person_id     bigint NOT NULL,
    author_user   bigint NOT NULL,
    kind          text NOT NULL CHECK (kind IN ('allergy', 'medicine', 'condition', 'contact', 'other')),
    body          text NOT NULL CHECK (length(body) BETWEEN 1 AND 2000),
    created       timestamptz NOT NULL DEFAULT now(),
    acknowledged  timestamptz,
    acknowledged_by bigint
);
CREATE INDEX update_request_open ON update_request (tenant_id, person_id) WHERE acknowledged IS NULL;
ALTER TABLE update_request ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON update_request
    USING (tenant_id = NULLIF(current_setting('molar.tenant', true), '')::bigint)
    WITH CHECK (tenant_id = NULLIF(current_setting('molar.tenant', true), '')::bigint);
REVOKE DELETE, TRUNCATE ON update_request FROM molar_app;
