-- The dental journal (issue 6). Rules enforced here, not only in Go:
--
--  * journal.entry and journal.signature are append-only for every role:
--    triggers refuse UPDATE, DELETE and TRUNCATE (owner and superusers
--    included, until someone drops the trigger), and the runtime role has no
--    UPDATE, DELETE or TRUNCATE privilege at all. Nothing in the record is
--    overwritten (Danish journal rules: corrections are new versions).
--  * A correction is a new entry whose supersedes points to the version it
--    replaces, with a reason; same person and kind; one version replaces
--    another at most once (a linear history).
--  * An entry is signed by its author (a row in journal.signature) and is
--    then locked: a signed entry cannot be signed again, and a correction of
--    a signed entry must itself be signed in the same transaction.
--  * Time of recording is the database's clock; the runtime role cannot
--    choose it, nor ids; the time of care may not lie in the future.
--  * Plan items and their status events, image links and patient profiles
--    are append-only too; a plan can only be closed, once.
--  * Every table carries tenant_id under row-level security.

CREATE TABLE journal.patient_profile (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id     bigint NOT NULL,
    person_id     bigint NOT NULL,
    risk          text CHECK (risk IN ('low', 'medium', 'high')),
    allergies     text NOT NULL DEFAULT '' CHECK (length(allergies) <= 4000),
    medicines     text NOT NULL DEFAULT '' CHECK (length(medicines) <= 4000),
    conditions    text NOT NULL DEFAULT '' CHECK (length(conditions) <= 4000),
    recorded_by   bigint NOT NULL,
    recorded_name text NOT NULL DEFAULT '',
    recorded_at   timestamptz NOT NULL DEFAULT clock_timestamp(),
    FOREIGN KEY (tenant_id, person_id) REFERENCES auth.person (tenant_id, id)
);
CREATE INDEX patient_profile_person ON journal.patient_profile (person_id, recorded_at DESC, id DESC);

CREATE TABLE journal.entry (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id   bigint NOT NULL,
    person_id   bigint NOT NULL,
    kind        text NOT NULL CHECK (kind IN ('examination', 'diagnosis', 'treatment_planned', 'treatment_performed',
                                              'xray_description', 'note', 'consent', 'parent_info')),
    author_id   bigint NOT NULL,
    author_name text NOT NULL,
    author_role text NOT NULL DEFAULT '',
    care_time   timestamptz NOT NULL,
    recorded_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    supersedes  bigint UNIQUE REFERENCES journal.entry (id),
    reason      text,
    body        jsonb NOT NULL CHECK (jsonb_typeof(body) = 'object'),
    UNIQUE (tenant_id, id),
    CHECK ((supersedes IS NULL) = (reason IS NULL)),
    CHECK (reason IS NULL OR btrim(reason) <> ''),
    CHECK (care_time <= recorded_at + interval '5 minutes'),
    FOREIGN KEY (tenant_id, person_id) REFERENCES auth.person (tenant_id, id)
);
CREATE INDEX entry_person ON journal.entry (person_id, care_time DESC, id DESC);
CREATE INDEX entry_xray_study ON journal.entry ((body -> 'xray' ->> 'study_uid')) WHERE kind = 'xray_description';

CREATE TABLE journal.signature (
    entry_id  bigint PRIMARY KEY REFERENCES journal.entry (id),
    tenant_id bigint NOT NULL,
    signed_by bigint NOT NULL,
    signed_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    FOREIGN KEY (tenant_id, entry_id) REFERENCES journal.entry (tenant_id, id)
);

CREATE TABLE journal.plan (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id  bigint NOT NULL,
    person_id  bigint NOT NULL,
    created_by bigint NOT NULL,
    created_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    closed_at  timestamptz,
    closed_by  bigint,
    UNIQUE (tenant_id, id),
    CHECK ((closed_at IS NULL) = (closed_by IS NULL)),
    FOREIGN KEY (tenant_id, person_id) REFERENCES auth.person (tenant_id, id)
);
-- One active plan per patient.
CREATE UNIQUE INDEX plan_one_active ON journal.plan (person_id) WHERE closed_at IS NULL;

CREATE TABLE journal.plan_item (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id  bigint NOT NULL,
    plan_id    bigint NOT NULL,
    person_id  bigint NOT NULL,
    tooth      int CHECK (tooth IS NULL OR (tooth / 10 BETWEEN 1 AND 4 AND tooth % 10 BETWEEN 1 AND 8)
                                        OR (tooth / 10 BETWEEN 5 AND 8 AND tooth % 10 BETWEEN 1 AND 5)),
    surfaces   text NOT NULL DEFAULT '' CHECK (surfaces ~ '^M?O?I?D?B?L?$'),
    procedure  text NOT NULL CHECK (procedure <> ''),
    note       text NOT NULL DEFAULT '',
    entry_id   bigint NOT NULL,
    created_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    UNIQUE (tenant_id, id),
    FOREIGN KEY (tenant_id, plan_id) REFERENCES journal.plan (tenant_id, id),
    FOREIGN KEY (tenant_id, entry_id) REFERENCES journal.entry (tenant_id, id)
);
CREATE INDEX plan_item_plan ON journal.plan_item (plan_id);

CREATE TABLE journal.plan_item_event (
    id        bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id bigint NOT NULL,
    item_id   bigint NOT NULL,
    status    text NOT NULL CHECK (status IN ('planned', 'done', 'referred', 'cancelled')),
    at        timestamptz NOT NULL DEFAULT clock_timestamp(),
    by_user   bigint NOT NULL,
    entry_id  bigint,
    note      text NOT NULL DEFAULT '',
    FOREIGN KEY (tenant_id, item_id) REFERENCES journal.plan_item (tenant_id, id),
    FOREIGN KEY (tenant_id, entry_id) REFERENCES journal.entry (tenant_id, id)
);
CREATE INDEX plan_item_event_item ON journal.plan_item_event (item_id, id DESC);

-- Images (DICOM studies and instances) linked to a person, a tooth and
-- optionally an entry.
CREATE TABLE journal.image_link (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id    bigint NOT NULL,
    person_id    bigint NOT NULL,
    study_uid    text NOT NULL CHECK (study_uid ~ '^[0-9.]{1,64}$'),
    series_uid   text NOT NULL DEFAULT '' CHECK (series_uid ~ '^[0-9.]{0,64}$'),
    instance_uid text NOT NULL DEFAULT '' CHECK (instance_uid ~ '^[0-9.]{0,64}$'),
    modality     text NOT NULL DEFAULT '' CHECK (modality ~ '^[A-Z]{0,4}$'),
    tooth        int,
    entry_id     bigint,
    linked_by    bigint NOT NULL,
    linked_at    timestamptz NOT NULL DEFAULT clock_timestamp(),
    FOREIGN KEY (tenant_id, person_id) REFERENCES auth.person (tenant_id, id),
    FOREIGN KEY (tenant_id, entry_id) REFERENCES journal.entry (tenant_id, id)
);
CREATE INDEX image_link_person ON journal.image_link (person_id, linked_at DESC);

-- Append-only, for every role.
CREATE FUNCTION journal.refuse_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'journal: %.% is append-only: % refused', TG_TABLE_SCHEMA, TG_TABLE_NAME, TG_OP
        USING HINT = 'Journal records are never changed or deleted: write a correction (a new version with a reason).';
END
$$;

CREATE TRIGGER append_only BEFORE UPDATE OR DELETE ON journal.entry
    FOR EACH ROW EXECUTE FUNCTION journal.refuse_change();
CREATE TRIGGER append_only_truncate BEFORE TRUNCATE ON journal.entry
    FOR EACH STATEMENT EXECUTE FUNCTION journal.refuse_change();
CREATE TRIGGER append_only BEFORE UPDATE OR DELETE ON journal.signature
    FOR EACH ROW EXECUTE FUNCTION journal.refuse_change();
CREATE TRIGGER append_only_truncate BEFORE TRUNCATE ON journal.signature
    FOR EACH STATEMENT EXECUTE FUNCTION journal.refuse_change();
CREATE TRIGGER append_only BEFORE UPDATE OR DELETE ON journal.patient_profile
    FOR EACH ROW EXECUTE FUNCTION journal.refuse_change();
CREATE TRIGGER append_only_truncate BEFORE TRUNCATE ON journal.patient_profile
    FOR EACH STATEMENT EXECUTE FUNCTION journal.refuse_change();
CREATE TRIGGER append_only BEFORE UPDATE OR DELETE ON journal.plan_item
    FOR EACH ROW EXECUTE FUNCTION journal.refuse_change();
CREATE TRIGGER append_only_truncate BEFORE TRUNCATE ON journal.plan_item
    FOR EACH STATEMENT EXECUTE FUNCTION journal.refuse_change();
CREATE TRIGGER append_only BEFORE UPDATE OR DELETE ON journal.plan_item_event
    FOR EACH ROW EXECUTE FUNCTION journal.refuse_change();
CREATE TRIGGER append_only_truncate BEFORE TRUNCATE ON journal.plan_item_event
    FOR EACH STATEMENT EXECUTE FUNCTION journal.refuse_change();
CREATE TRIGGER append_only BEFORE UPDATE OR DELETE ON journal.image_link
    FOR EACH ROW EXECUTE FUNCTION journal.refuse_change();
CREATE TRIGGER append_only_truncate BEFORE TRUNCATE ON journal.image_link
    FOR EACH STATEMENT EXECUTE FUNCTION journal.refuse_change();
CREATE TRIGGER append_only BEFORE DELETE ON journal.plan
    FOR EACH ROW EXECUTE FUNCTION journal.refuse_change();
CREATE TRIGGER append_only_truncate BEFORE TRUNCATE ON journal.plan
    FOR EACH STATEMENT EXECUTE FUNCTION journal.refuse_change();

-- A plan can only be closed, once; nothing else of it changes.
CREATE FUNCTION journal.check_plan_update() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF OLD.closed_at IS NOT NULL THEN
        RAISE EXCEPTION 'journal: plan % is closed', OLD.id;
    END IF;
    IF NEW.id <> OLD.id OR NEW.tenant_id <> OLD.tenant_id OR NEW.person_id <> OLD.person_id
       OR NEW.created_by <> OLD.created_by OR NEW.created_at <> OLD.created_at OR NEW.closed_at IS NULL THEN
        RAISE EXCEPTION 'journal: a plan can only be closed';
    END IF;
    RETURN NEW;
END
$$;
CREATE TRIGGER check_plan_update BEFORE UPDATE ON journal.plan
    FOR EACH ROW EXECUTE FUNCTION journal.check_plan_update();

-- A correction replaces a version of the same person and kind.
CREATE FUNCTION journal.check_entry() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    old_person bigint;
    old_kind   text;
BEGIN
    IF NEW.supersedes IS NOT NULL THEN
        SELECT e.person_id, e.kind INTO old_person, old_kind FROM journal.entry e WHERE e.id = NEW.supersedes;
        IF NOT FOUND THEN
            RAISE EXCEPTION 'journal: entry % to correct does not exist', NEW.supersedes;
        END IF;
        IF old_person <> NEW.person_id OR old_kind <> NEW.kind THEN
            RAISE EXCEPTION 'journal: a correction must concern the same person and kind as entry %', NEW.supersedes;
        END IF;
    END IF;
    RETURN NEW;
END
$$;
CREATE TRIGGER check_entry BEFORE INSERT ON journal.entry
    FOR EACH ROW EXECUTE FUNCTION journal.check_entry();

-- At commit: a correction of a signed entry is signed too.
CREATE FUNCTION journal.check_correction_signed() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.supersedes IS NOT NULL
       AND EXISTS (SELECT 1 FROM journal.signature s WHERE s.entry_id = NEW.supersedes)
       AND NOT EXISTS (SELECT 1 FROM journal.signature s WHERE s.entry_id = NEW.id) THEN
        RAISE EXCEPTION 'journal: entry % is signed and locked: its correction % must be signed', NEW.supersedes, NEW.id;
    END IF;
    RETURN NULL;
END
$$;
CREATE CONSTRAINT TRIGGER correction_signed AFTER INSERT ON journal.entry
    DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW EXECUTE FUNCTION journal.check_correction_signed();

-- Only the author signs, and only a current version.
CREATE FUNCTION journal.check_signature() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    author bigint;
BEGIN
    SELECT e.author_id INTO author FROM journal.entry e WHERE e.id = NEW.entry_id;
    IF author IS DISTINCT FROM NEW.signed_by THEN
        RAISE EXCEPTION 'journal: only the author signs entry %', NEW.entry_id;
    END IF;
    IF EXISTS (SELECT 1 FROM journal.entry n WHERE n.supersedes = NEW.entry_id) THEN
        RAISE EXCEPTION 'journal: entry % has been replaced and cannot be signed', NEW.entry_id;
    END IF;
    RETURN NEW;
END
$$;
CREATE TRIGGER check_signature BEFORE INSERT ON journal.signature
    FOR EACH ROW EXECUTE FUNCTION journal.check_signature();

-- Row-level security: the runtime role sees and writes only its tenant's rows.
ALTER TABLE journal.patient_profile ENABLE ROW LEVEL SECURITY;
ALTER TABLE journal.entry ENABLE ROW LEVEL SECURITY;
ALTER TABLE journal.signature ENABLE ROW LEVEL SECURITY;
ALTER TABLE journal.plan ENABLE ROW LEVEL SECURITY;
ALTER TABLE journal.plan_item ENABLE ROW LEVEL SECURITY;
ALTER TABLE journal.plan_item_event ENABLE ROW LEVEL SECURITY;
ALTER TABLE journal.image_link ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON journal.patient_profile
    USING (tenant_id = NULLIF(current_setting('molar.tenant', true), '')::bigint)
    WITH CHECK (tenant_id = NULLIF(current_setting('molar.tenant', true), '')::bigint);
CREATE POLICY tenant_isolation ON journal.entry
    USING (tenant_id = NULLIF(current_setting('molar.tenant', true), '')::bigint)
    WITH CHECK (tenant_id = NULLIF(current_setting('molar.tenant', true), '')::bigint);
CREATE POLICY tenant_isolation ON journal.signature
    USING (tenant_id = NULLIF(current_setting('molar.tenant', true), '')::bigint)
    WITH CHECK (tenant_id = NULLIF(current_setting('molar.tenant', true), '')::bigint);
CREATE POLICY tenant_isolation ON journal.plan
    USING (tenant_id = NULLIF(current_setting('molar.tenant', true), '')::bigint)
    WITH CHECK (tenant_id = NULLIF(current_setting('molar.tenant', true), '')::bigint);
CREATE POLICY tenant_isolation ON journal.plan_item
    USING (tenant_id = NULLIF(current_setting('molar.tenant', true), '')::bigint)
    WITH CHECK (tenant_id = NULLIF(current_setting('molar.tenant', true), '')::bigint);
CREATE POLICY tenant_isolation ON journal.plan_item_event
    USING (tenant_id = NULLIF(current_setting('molar.tenant', true), '')::bigint)
    WITH CHECK (tenant_id = NULLIF(current_setting('molar.tenant', true), '')::bigint);
CREATE POLICY tenant_isolation ON journal.image_link
    USING (tenant_id = NULLIF(current_setting('molar.tenant', true), '')::bigint)
    WITH CHECK (tenant_id = NULLIF(current_setting('molar.tenant', true), '')::bigint);

-- Privileges. The migration runner's default privileges gave the runtime
-- role SELECT, INSERT, UPDATE, DELETE on every table: take them back and
-- grant only appending (of the descriptive columns: ids and recording times
-- come from the database) and reading.
REVOKE ALL ON journal.patient_profile, journal.entry, journal.signature, journal.plan, journal.plan_item,
    journal.plan_item_event, journal.image_link FROM PUBLIC;
REVOKE ALL ON journal.patient_profile, journal.entry, journal.signature, journal.plan, journal.plan_item,
    journal.plan_item_event, journal.image_link FROM molar_app;
GRANT SELECT ON journal.patient_profile, journal.entry, journal.signature, journal.plan, journal.plan_item,
    journal.plan_item_event, journal.image_link TO molar_app;
GRANT INSERT (tenant_id, person_id, risk, allergies, medicines, conditions, recorded_by, recorded_name)
    ON journal.patient_profile TO molar_app;
GRANT INSERT (tenant_id, person_id, kind, author_id, author_name, author_role, care_time, supersedes, reason, body)
    ON journal.entry TO molar_app;
GRANT INSERT (entry_id, tenant_id, signed_by) ON journal.signature TO molar_app;
GRANT INSERT (tenant_id, person_id, created_by) ON journal.plan TO molar_app;
GRANT UPDATE (closed_at, closed_by) ON journal.plan TO molar_app;
GRANT INSERT (tenant_id, plan_id, person_id, tooth, surfaces, procedure, note, entry_id) ON journal.plan_item TO molar_app;
GRANT INSERT (tenant_id, item_id, status, by_user, entry_id, note) ON journal.plan_item_event TO molar_app;
GRANT INSERT (tenant_id, person_id, study_uid, series_uid, instance_uid, modality, tooth, entry_id, linked_by)
    ON journal.image_link TO molar_app;
REVOKE ALL ON FUNCTION journal.refuse_change(), journal.check_plan_update(), journal.check_entry(),
    journal.check_correction_signed(), journal.check_signature() FROM PUBLIC, molar_app;
