-- Booking (issue 7): resources, opening hours, appointment types,
-- appointments, call-in invitations, notifications and calendar feeds.
--
-- Units (clinics) and persons belong to the core register; this schema keeps
-- only their ids (no foreign keys into another package's tables).
--
-- Double booking is impossible in the database: every resource an
-- appointment holds is a row of appointment_resource with the time range,
-- and an exclusion constraint refuses two active rows of one resource whose
-- ranges overlap. The constraint needs btree_gist (equality on bigint in a
-- GiST index). btree_gist is a trusted extension (PostgreSQL 13+): the owner
-- role may create it with CREATE on the database, which the runner grants.
-- It goes into public, where every schema's search_path finds it, so a later
-- module wanting it finds it installed.
CREATE EXTENSION IF NOT EXISTS btree_gist WITH SCHEMA public;

-- Rooms, chairs and staff of a unit.
CREATE TABLE resource (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id  bigint NOT NULL,
    unit_id    bigint NOT NULL,
    kind       text NOT NULL CHECK (kind IN ('chair', 'room', 'staff')),
    name       text NOT NULL CHECK (name <> '' AND length(name) <= 200),
    user_id    bigint,                      -- staff: the user account, if any
    station_ae text NOT NULL DEFAULT '' CHECK (length(station_ae) <= 16),
    active     boolean NOT NULL DEFAULT true,
    created    timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, id)
);
CREATE INDEX resource_unit ON resource (tenant_id, unit_id);

-- Opening hours: local wall-clock times (Europe/Copenhagen) per ISO weekday
-- (1 = Monday). A weekday may have several intervals; none = closed.
CREATE TABLE opening_hours (
    tenant_id bigint NOT NULL,
    unit_id   bigint NOT NULL,
    weekday   smallint NOT NULL CHECK (weekday BETWEEN 1 AND 7),
    opens     time NOT NULL,
    closes    time NOT NULL,
    CHECK (opens < closes),
    PRIMARY KEY (tenant_id, unit_id, weekday, opens)
);

CREATE TABLE closed_day (
    tenant_id bigint NOT NULL,
    unit_id   bigint NOT NULL,
    day       date NOT NULL,
    reason    text NOT NULL DEFAULT '' CHECK (length(reason) <= 200),
    PRIMARY KEY (tenant_id, unit_id, day)
);

-- Staff absence (or a room out of use).
CREATE TABLE absence (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id   bigint NOT NULL,
    resource_id bigint NOT NULL,
    during      tstzrange NOT NULL CHECK (NOT isempty(during)),
    reason      text NOT NULL DEFAULT '' CHECK (length(reason) <= 200),
    FOREIGN KEY (tenant_id, resource_id) REFERENCES resource (tenant_id, id)
);
CREATE INDEX absence_resource ON absence USING gist (resource_id, during);

-- What can be booked. kinds: the resource kinds an appointment holds (one of
-- each). name is for staff; public_name is what citizens, e-mails and the
-- calendar feed show (no health data).
CREATE TABLE appointment_type (
    id                    bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id             bigint NOT NULL,
    code                  text NOT NULL CHECK (code ~ '^[a-z][a-z0-9_]{0,40}$'),
    name                  text NOT NULL CHECK (name <> '' AND length(name) <= 200),
    name_en               text NOT NULL DEFAULT '' CHECK (length(name_en) <= 200),
    public_name           text NOT NULL DEFAULT '' CHECK (length(public_name) <= 200),
    minutes               int NOT NULL CHECK (minutes BETWEEN 5 AND 480),
    self_service          boolean NOT NULL DEFAULT false,
    kinds                 text[] NOT NULL DEFAULT '{chair}' CHECK (kinds <@ ARRAY['chair', 'room', 'staff']),
    imaging               boolean NOT NULL DEFAULT false,
    station_ae            text NOT NULL DEFAULT '' CHECK (length(station_ae) <= 16),
    procedure_code        text NOT NULL DEFAULT '' CHECK (length(procedure_code) <= 16),
    procedure_description text NOT NULL DEFAULT '' CHECK (length(procedure_description) <= 64),
    modality              text NOT NULL DEFAULT '' CHECK (modality ~ '^[A-Z]{0,2}$'),
    video                 boolean NOT NULL DEFAULT false,
    active                boolean NOT NULL DEFAULT true,
    CHECK (NOT imaging OR (station_ae <> '' AND modality <> '')),
    UNIQUE (tenant_id, code),
    UNIQUE (tenant_id, id)
);

-- Resources eligible for a type (none listed for a kind = any of the unit's).
CREATE TABLE type_resource (
    tenant_id   bigint NOT NULL,
    type_id     bigint NOT NULL,
    resource_id bigint NOT NULL,
    PRIMARY KEY (type_id, resource_id),
    FOREIGN KEY (tenant_id, type_id) REFERENCES appointment_type (tenant_id, id),
    FOREIGN KEY (tenant_id, resource_id) REFERENCES resource (tenant_id, id)
);

-- Self-service and notification rules per unit (unit_id 0 = the tenant's default).
CREATE TABLE rule (
    tenant_id            bigint NOT NULL,
    unit_id              bigint NOT NULL DEFAULT 0,
    min_notice_hours     int NOT NULL DEFAULT 24 CHECK (min_notice_hours BETWEEN 0 AND 720),
    horizon_days         int NOT NULL DEFAULT 90 CHECK (horizon_days BETWEEN 1 AND 730),
    cancel_allowed       boolean NOT NULL DEFAULT true,
    reminder_hours       int NOT NULL DEFAULT 48 CHECK (reminder_hours BETWEEN 0 AND 720),
    answer_days          int NOT NULL DEFAULT 7 CHECK (answer_days BETWEEN 1 AND 90),
    followup_days        int NOT NULL DEFAULT 3 CHECK (followup_days BETWEEN 1 AND 90),
    max_followups        int NOT NULL DEFAULT 2 CHECK (max_followups BETWEEN 0 AND 10),
    PRIMARY KEY (tenant_id, unit_id)
);

-- Call-in invitations sent from the recall list.
CREATE TABLE invitation (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id     bigint NOT NULL,
    unit_id       bigint NOT NULL,
    person_id     bigint NOT NULL,
    due_date      date NOT NULL,
    status        text NOT NULL DEFAULT 'sent' CHECK (status IN ('sent', 'accepted', 'changed', 'cancelled', 'unanswered')),
    sent          timestamptz NOT NULL DEFAULT now(),
    sent_by       text NOT NULL DEFAULT '',
    respond_by    timestamptz NOT NULL,
    followups     int NOT NULL DEFAULT 0,
    next_followup timestamptz,
    answered      timestamptz,
    UNIQUE (tenant_id, id)
);
CREATE INDEX invitation_person ON invitation (tenant_id, person_id);
CREATE INDEX invitation_followup ON invitation (next_followup) WHERE status = 'sent';

CREATE TABLE appointment (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id        bigint NOT NULL,
    unit_id          bigint NOT NULL,
    person_id        bigint NOT NULL,
    type_id          bigint NOT NULL,
    during           tstzrange NOT NULL CHECK (NOT isempty(during) AND lower_inc(during) AND NOT upper_inc(during)),
    -- proposed: an invitation's time, held until answered; booked; cancelled.
    status           text NOT NULL DEFAULT 'booked' CHECK (status IN ('proposed', 'booked', 'cancelled')),
    booked_via       text NOT NULL CHECK (booked_via IN ('staff', 'self', 'invitation')),
    cancel_reason    text NOT NULL DEFAULT '' CHECK (length(cancel_reason) <= 500),
    change_reason    text NOT NULL DEFAULT '' CHECK (length(change_reason) <= 500), -- of the last move
    invitation_id    bigint,
    accession_number text NOT NULL DEFAULT '' CHECK (length(accession_number) <= 16),
    study_uid        text NOT NULL DEFAULT '' CHECK (length(study_uid) <= 64),
    created          timestamptz NOT NULL DEFAULT now(),
    created_by       text NOT NULL DEFAULT '',
    updated          timestamptz NOT NULL DEFAULT now(),
    version          int NOT NULL DEFAULT 1,
    reminded         timestamptz,
    UNIQUE (tenant_id, id),
    FOREIGN KEY (tenant_id, type_id) REFERENCES appointment_type (tenant_id, id),
    FOREIGN KEY (tenant_id, invitation_id) REFERENCES invitation (tenant_id, id),
    -- A person is never in two places at once.
    EXCLUDE USING gist (tenant_id WITH =, person_id WITH =, during WITH &&) WHERE (status <> 'cancelled')
);
CREATE INDEX appointment_unit ON appointment USING gist (tenant_id, unit_id, during);
CREATE INDEX appointment_reminder ON appointment (lower(during)) WHERE status = 'booked' AND reminded IS NULL;

-- The resources an appointment holds. The exclusion constraint is the
-- guarantee against double booking: two active rows of one resource never
-- overlap, whatever the application does.
CREATE TABLE appointment_resource (
    tenant_id      bigint NOT NULL,
    appointment_id bigint NOT NULL,
    resource_id    bigint NOT NULL,
    during         tstzrange NOT NULL,
    active         boolean NOT NULL DEFAULT true,
    PRIMARY KEY (appointment_id, resource_id),
    FOREIGN KEY (tenant_id, appointment_id) REFERENCES appointment (tenant_id, id),
    FOREIGN KEY (tenant_id, resource_id) REFERENCES resource (tenant_id, id),
    CONSTRAINT no_double_booking EXCLUDE USING gist (resource_id WITH =, during WITH &&) WHERE (active)
);

-- Notifications to send (confirmations, reminders, invitations, follow-ups,
-- changes); the runner sends due rows and marks them sent.
CREATE TABLE outbox (
    id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id      bigint NOT NULL,
    kind           text NOT NULL CHECK (kind IN ('confirmation', 'reminder', 'moved', 'cancelled', 'invitation', 'followup')),
    appointment_id bigint NOT NULL,
    due            timestamptz NOT NULL DEFAULT now(),
    sent           timestamptz,
    attempts       int NOT NULL DEFAULT 0,
    last_error     text NOT NULL DEFAULT '',
    created        timestamptz NOT NULL DEFAULT now(),
    FOREIGN KEY (tenant_id, appointment_id) REFERENCES appointment (tenant_id, id)
);
CREATE INDEX outbox_due ON outbox (due) WHERE sent IS NULL;

-- Calendar feeds: a secret link per citizen (only its SHA-256 is kept),
-- revocable. The feed carries times and places only.
CREATE TABLE feed (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id  bigint NOT NULL,
    person_id  bigint NOT NULL,
    token_hash bytea NOT NULL UNIQUE,
    created    timestamptz NOT NULL DEFAULT now(),
    revoked    timestamptz
);
CREATE UNIQUE INDEX feed_active ON feed (tenant_id, person_id) WHERE revoked IS NULL;

-- Tenant isolation for the runtime role (the owner and its SECURITY DEFINER
-- functions are exempt: enabled, not forced).
DO $$
DECLARE t text;
BEGIN
  FOREACH t IN ARRAY ARRAY['resource', 'opening_hours', 'closed_day', 'absence', 'appointment_type', 'type_resource',
                           'rule', 'invitation', 'appointment', 'appointment_resource', 'outbox', 'feed'] LOOP
    EXECUTE format('ALTER TABLE booking.%I ENABLE ROW LEVEL SECURITY', t);
    EXECUTE format($p$CREATE POLICY tenant_isolation ON booking.%I
        USING (tenant_id = NULLIF(current_setting('molar.tenant', true), '')::bigint)
        WITH CHECK (tenant_id = NULLIF(current_setting('molar.tenant', true), '')::bigint)$p$, t);
  END LOOP;
END $$;

-- Appointments, invitations and sent notifications are history: never deleted.
REVOKE DELETE, TRUNCATE ON appointment, invitation, outbox, appointment_resource FROM molar_app;

-- Cross-tenant entry points for the runtime role (background runner, DICOM
-- worklist, calendar feed): they return ids only; the work itself then runs
-- per tenant under row-level security.
CREATE FUNCTION booking.tenants() RETURNS SETOF bigint
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$ SELECT DISTINCT tenant_id FROM booking.appointment_type ORDER BY 1 $$;

CREATE FUNCTION booking.feed_owner(p_hash bytea, OUT tenant_id bigint, OUT person_id bigint)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$ SELECT f.tenant_id, f.person_id FROM booking.feed f WHERE f.token_hash = p_hash AND f.revoked IS NULL $$;

REVOKE ALL ON FUNCTION booking.tenants(), booking.feed_owner(bytea) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION booking.tenants(), booking.feed_owner(bytea) TO molar_app;
