-- Identity and access core: municipalities (tenants), organisational units,
-- the citizen register, custody and care relations, users, sessions and
-- login bookkeeping. Tables with person data carry tenant_id and are
-- protected by row-level security for the runtime role; the policy reads the
-- setting that postgres.InTenant sets.

CREATE TABLE tenant (
    id      bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    code    text NOT NULL UNIQUE CHECK (code <> ''),  -- e.g. the municipality number
    name    text NOT NULL CHECK (name <> ''),
    created timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE org_unit (
    id        bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id bigint NOT NULL REFERENCES tenant (id),
    kind      text NOT NULL CHECK (kind ~ '^[a-z][a-z0-9_]{0,40}$'),  -- dental_clinic, home_care_group, ...
    name      text NOT NULL CHECK (name <> ''),
    sor_id    text CHECK (sor_id ~ '^[0-9]{15,18}$'),                  -- urn:oid:1.2.208.176.1.1
    created   timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, id)
);
CREATE UNIQUE INDEX org_unit_sor ON org_unit (tenant_id, sor_id) WHERE sor_id IS NOT NULL;

-- The citizen register shared by the whole system. cpr holds the ten digits
-- (exact match search); NULL for people without a CPR number.
CREATE TABLE person (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id   bigint NOT NULL REFERENCES tenant (id),
    cpr         text CHECK (cpr ~ '^[0-9]{10}$'),
    given_name  text NOT NULL DEFAULT '',
    family_name text NOT NULL DEFAULT '',
    birth_date  date,
    sex         text NOT NULL DEFAULT 'unknown' CHECK (sex IN ('male', 'female', 'unknown')),
    address     text NOT NULL DEFAULT '',
    phone       text NOT NULL DEFAULT '',
    email       text NOT NULL DEFAULT '',
    created     timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, id),
    UNIQUE (tenant_id, cpr)
);

CREATE TABLE custody (
    tenant_id        bigint NOT NULL,
    holder_person_id bigint NOT NULL,
    child_person_id  bigint NOT NULL,
    created          timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (holder_person_id, child_person_id),
    CHECK (holder_person_id <> child_person_id),
    FOREIGN KEY (tenant_id, holder_person_id) REFERENCES person (tenant_id, id),
    FOREIGN KEY (tenant_id, child_person_id) REFERENCES person (tenant_id, id)
);
CREATE INDEX custody_child ON custody (child_person_id);

-- "This unit cares for this person" (a child's dental clinic, a citizen's
-- home-care group), valid on the dates [valid_from, valid_to].
CREATE TABLE care_relation (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id   bigint NOT NULL,
    org_unit_id bigint NOT NULL,
    person_id   bigint NOT NULL,
    kind        text NOT NULL DEFAULT 'care' CHECK (kind ~ '^[a-z][a-z0-9_]{0,40}$'),
    valid_from  date NOT NULL DEFAULT current_date,
    valid_to    date,
    created     timestamptz NOT NULL DEFAULT now(),
    CHECK (valid_to IS NULL OR valid_to >= valid_from),
    FOREIGN KEY (tenant_id, org_unit_id) REFERENCES org_unit (tenant_id, id),
    FOREIGN KEY (tenant_id, person_id) REFERENCES person (tenant_id, id)
);
CREATE INDEX care_relation_person ON care_relation (person_id, org_unit_id);

CREATE TABLE users (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id        bigint NOT NULL REFERENCES tenant (id),
    username         text NOT NULL CHECK (username <> ''),
    display_name     text NOT NULL DEFAULT '',
    role             text NOT NULL CHECK (role ~ '^[a-z][a-z0-9_]{0,40}$'),
    password_hash    text,                 -- argon2id, PHC string; NULL = no local password
    password_changed timestamptz,
    oidc_issuer      text,
    oidc_subject     text,
    person_id        bigint,               -- the user's own person (citizens)
    locked_at        timestamptz,
    created          timestamptz NOT NULL DEFAULT now(),
    CHECK ((oidc_issuer IS NULL) = (oidc_subject IS NULL)),
    CHECK (role <> 'citizen' OR person_id IS NOT NULL),
    FOREIGN KEY (tenant_id, person_id) REFERENCES person (tenant_id, id)
);
CREATE UNIQUE INDEX users_username ON users (lower(username));
CREATE UNIQUE INDEX users_oidc ON users (tenant_id, oidc_issuer, oidc_subject) WHERE oidc_issuer IS NOT NULL;
CREATE INDEX users_person ON users (person_id) WHERE person_id IS NOT NULL;

CREATE TABLE user_unit (
    user_id     bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    org_unit_id bigint NOT NULL REFERENCES org_unit (id),
    PRIMARY KEY (user_id, org_unit_id)
);

-- Failed logins inside the lock-out window; cleared by a successful login
-- and by an unlock.
CREATE TABLE login_failure (
    id      bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    at      timestamptz NOT NULL,
    source  text NOT NULL DEFAULT ''
);
CREATE INDEX login_failure_user ON login_failure (user_id, at);

-- Notices for a user, shown at the next login (e.g. "your account was locked").
CREATE TABLE notice (
    id       bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id  bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    kind     text NOT NULL,
    detail   jsonb NOT NULL DEFAULT '{}',
    created  timestamptz NOT NULL,
    shown_at timestamptz
);
CREATE INDEX notice_unshown ON notice (user_id) WHERE shown_at IS NULL;

-- Server-side sessions: only the SHA-256 of the random id is stored.
CREATE TABLE session (
    id_hash      bytea PRIMARY KEY CHECK (length(id_hash) = 32),
    user_id      bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    csrf_token   text NOT NULL,
    method       text NOT NULL,            -- password | oidc
    created      timestamptz NOT NULL,
    last_seen    timestamptz NOT NULL,
    idle_seconds integer NOT NULL CHECK (idle_seconds > 0),
    expires      timestamptz NOT NULL,     -- absolute expiry
    source       text NOT NULL DEFAULT ''
);
CREATE INDEX session_by_user ON session (user_id);
CREATE INDEX session_by_expiry ON session (expires);

-- OpenID Connect authorisation requests in flight (state, nonce, PKCE).
CREATE TABLE oidc_flow (
    state_hash bytea PRIMARY KEY,
    provider   text NOT NULL,
    nonce      text NOT NULL,
    verifier   text NOT NULL,
    next       text NOT NULL DEFAULT '/',
    created    timestamptz NOT NULL
);

-- Break-the-glass grants: a user reached a person outside their units' care
-- with a stated reason, for a limited time (session_hash NULL: the grant is
-- not tied to a browser session, e.g. Basic or Bearer).
CREATE TABLE break_glass (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id    bigint NOT NULL,
    user_id      bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    session_hash bytea,
    person_id    bigint NOT NULL,
    reason       text NOT NULL CHECK (btrim(reason) <> ''),
    created      timestamptz NOT NULL,
    expires      timestamptz NOT NULL,
    FOREIGN KEY (tenant_id, person_id) REFERENCES person (tenant_id, id)
);
CREATE INDEX break_glass_lookup ON break_glass (user_id, person_id, expires);

-- Row-level security: the runtime role sees and writes only the rows of the
-- tenant set by postgres.InTenant; without it, none.
ALTER TABLE person ENABLE ROW LEVEL SECURITY;
ALTER TABLE custody ENABLE ROW LEVEL SECURITY;
ALTER TABLE care_relation ENABLE ROW LEVEL SECURITY;
ALTER TABLE break_glass ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON person
    USING (tenant_id = NULLIF(current_setting('molar.tenant', true), '')::bigint)
    WITH CHECK (tenant_id = NULLIF(current_setting('molar.tenant', true), '')::bigint);
CREATE POLICY tenant_isolation ON custody
    USING (tenant_id = NULLIF(current_setting('molar.tenant', true), '')::bigint)
    WITH CHECK (tenant_id = NULLIF(current_setting('molar.tenant', true), '')::bigint);
CREATE POLICY tenant_isolation ON care_relation
    USING (tenant_id = NULLIF(current_setting('molar.tenant', true), '')::bigint)
    WITH CHECK (tenant_id = NULLIF(current_setting('molar.tenant', true), '')::bigint);
CREATE POLICY tenant_isolation ON break_glass
    USING (tenant_id = NULLIF(current_setting('molar.tenant', true), '')::bigint)
    WITH CHECK (tenant_id = NULLIF(current_setting('molar.tenant', true), '')::bigint);
