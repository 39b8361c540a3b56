-- The DICOM index: patient -> study -> series -> instance, per tenant, under
-- row-level security. Attributes that C-FIND and QIDO-RS match on are real,
-- indexed columns; names are kept as received (decoded to UTF-8) plus a
-- lower-case form (case-insensitive matching) and a Danish-aware fuzzy key
-- (lower case, æ->ae, ø->oe, å->aa, other accents dropped; see
-- index.FuzzyKey). Everything else of an instance's header is in
-- instance.attrs (DICOM JSON model, PS3.18 F.2, without bulk data).

CREATE TABLE patient (
    id            bigserial PRIMARY KEY,
    tenant_id     bigint NOT NULL REFERENCES auth.tenant (id),
    patient_id    text NOT NULL,               -- (0010,0020) as received
    issuer        text NOT NULL DEFAULT '',    -- (0010,0021)
    name          text NOT NULL DEFAULT '',    -- (0010,0010), UTF-8, components joined by ^
    name_ci       text NOT NULL DEFAULT '',    -- lower(name)
    name_fuzzy    text NOT NULL DEFAULT '',    -- FuzzyKey(name): words separated by single spaces
    birth_date    date,
    sex           text NOT NULL DEFAULT '',
    person_id     bigint,                      -- reconciled person (auth.person), NULL = not reconciled
    created       timestamptz NOT NULL DEFAULT now(),
    updated       timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, patient_id, issuer),
    UNIQUE (tenant_id, id),
    FOREIGN KEY (tenant_id, person_id) REFERENCES auth.person (tenant_id, id)
);
CREATE INDEX patient_name_ci ON patient (tenant_id, name_ci text_pattern_ops);
CREATE INDEX patient_name_fuzzy ON patient (tenant_id, name_fuzzy text_pattern_ops);
CREATE INDEX patient_birth ON patient (tenant_id, birth_date);
CREATE INDEX patient_person ON patient (person_id) WHERE person_id IS NOT NULL;

-- Reconciliation states of a study (see index.Recon*).
CREATE TABLE study (
    id              bigserial PRIMARY KEY,
    tenant_id       bigint NOT NULL,
    patient_ref     bigint NOT NULL,
    study_uid       text NOT NULL,
    study_date      date,
    study_time      time,
    accession       text NOT NULL DEFAULT '',
    study_id        text NOT NULL DEFAULT '',
    description     text NOT NULL DEFAULT '',
    description_ci  text NOT NULL DEFAULT '',
    referring       text NOT NULL DEFAULT '',    -- (0008,0090)
    referring_ci    text NOT NULL DEFAULT '',
    referring_fuzzy text NOT NULL DEFAULT '',
    modalities      text[] NOT NULL DEFAULT '{}',
    sop_classes     text[] NOT NULL DEFAULT '{}',
    -- What the study's first instance said about the patient (the patient
    -- row keeps the first values seen for the Patient ID).
    patient_name    text NOT NULL DEFAULT '',
    patient_birth   date,
    person_id       bigint,                      -- reconciled person
    recon_state     text NOT NULL DEFAULT 'unmatched'
                    CHECK (recon_state IN ('matched', 'unmatched', 'conflict', 'resolved')),
    recon_note      text NOT NULL DEFAULT '',    -- why it is on the list (no PII)
    created         timestamptz NOT NULL DEFAULT now(),
    updated         timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, study_uid),
    UNIQUE (tenant_id, id),
    FOREIGN KEY (tenant_id, patient_ref) REFERENCES patient (tenant_id, id),
    FOREIGN KEY (tenant_id, person_id) REFERENCES auth.person (tenant_id, id)
);
CREATE INDEX study_patient ON study (patient_ref);
CREATE INDEX study_date ON study (tenant_id, study_date, study_time);
CREATE INDEX study_accession ON study (tenant_id, accession) WHERE accession <> '';
CREATE INDEX study_description ON study (tenant_id, description_ci text_pattern_ops);
CREATE INDEX study_referring ON study (tenant_id, referring_ci text_pattern_ops);
CREATE INDEX study_modalities ON study USING gin (modalities);
CREATE INDEX study_person ON study (tenant_id, person_id, study_date);
CREATE INDEX study_recon ON study (tenant_id, recon_state, created) WHERE recon_state IN ('unmatched', 'conflict');
CREATE INDEX study_created ON study (tenant_id, created);

CREATE TABLE series (
    id              bigserial PRIMARY KEY,
    tenant_id       bigint NOT NULL,
    study_ref       bigint NOT NULL,
    series_uid      text NOT NULL,
    modality        text NOT NULL DEFAULT '',
    series_number   integer,
    description     text NOT NULL DEFAULT '',
    description_ci  text NOT NULL DEFAULT '',
    body_part       text NOT NULL DEFAULT '',
    series_date     date,
    series_time     time,
    station_name    text NOT NULL DEFAULT '',
    laterality      text NOT NULL DEFAULT '',
    created         timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, series_uid),
    UNIQUE (tenant_id, id),
    FOREIGN KEY (tenant_id, study_ref) REFERENCES study (tenant_id, id) ON DELETE CASCADE
);
CREATE INDEX series_study ON series (study_ref, series_number);
CREATE INDEX series_modality ON series (tenant_id, modality);

CREATE TABLE instance (
    id               bigserial PRIMARY KEY,
    tenant_id        bigint NOT NULL,
    series_ref       bigint NOT NULL,
    study_ref        bigint NOT NULL,
    sop_instance_uid text NOT NULL,
    sop_class_uid    text NOT NULL,
    instance_number  integer,
    transfer_syntax  text NOT NULL,
    object_key       text NOT NULL UNIQUE,       -- Part-10 file in the object store
    size             bigint NOT NULL,            -- bytes of the object
    sha256           bytea NOT NULL,             -- of the object
    source_ae        text NOT NULL DEFAULT '',   -- calling AE, "STOW-RS", "import"
    rows             integer,
    columns          integer,
    frames           integer,
    content_date     date,
    content_time     time,
    image_laterality text NOT NULL DEFAULT '',
    tooth_codes      text[] NOT NULL DEFAULT '{}', -- ISO 3950 (FDI) numbers
    person_id        bigint,                     -- reconciled person (copied from the study)
    attrs            jsonb NOT NULL DEFAULT '{}',
    created          timestamptz NOT NULL DEFAULT now(),
    updated          timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, sop_instance_uid),
    FOREIGN KEY (tenant_id, series_ref) REFERENCES series (tenant_id, id) ON DELETE CASCADE,
    FOREIGN KEY (tenant_id, study_ref) REFERENCES study (tenant_id, id) ON DELETE CASCADE,
    FOREIGN KEY (tenant_id, person_id) REFERENCES auth.person (tenant_id, id)
);
CREATE INDEX instance_series ON instance (series_ref, instance_number);
CREATE INDEX instance_study ON instance (study_ref);
CREATE INDEX instance_teeth ON instance USING gin (tooth_codes);
CREATE INDEX instance_person ON instance (tenant_id, person_id) WHERE person_id IS NOT NULL;
CREATE INDEX instance_sop_class ON instance (tenant_id, sop_class_uid);

-- Reconciliation history: every link, correction and merge (who, when,
-- what; the audit log has the person access side).
CREATE TABLE reconciliation (
    id          bigserial PRIMARY KEY,
    tenant_id   bigint NOT NULL,
    study_ref   bigint,
    action      text NOT NULL CHECK (action IN ('auto-match', 'link', 'correct', 'merge', 'unlink')),
    person_id   bigint,
    actor       text NOT NULL DEFAULT '',
    detail      jsonb NOT NULL DEFAULT '{}',
    created     timestamptz NOT NULL DEFAULT now(),
    FOREIGN KEY (tenant_id, study_ref) REFERENCES study (tenant_id, id) ON DELETE SET NULL (study_ref)
);
CREATE INDEX reconciliation_study ON reconciliation (study_ref);
REVOKE UPDATE, DELETE, TRUNCATE ON reconciliation FROM molar_app;

ALTER TABLE patient ENABLE ROW LEVEL SECURITY;
ALTER TABLE study ENABLE ROW LEVEL SECURITY;
ALTER TABLE series ENABLE ROW LEVEL SECURITY;
ALTER TABLE instance ENABLE ROW LEVEL SECURITY;
ALTER TABLE reconciliation ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON patient
    USING (tenant_id = NULLIF(current_setting('molar.tenant', true), '')::bigint)
    WITH CHECK (tenant_id = NULLIF(current_setting('molar.tenant', true), '')::bigint);
CREATE POLICY tenant_isolation ON study
    USING (tenant_id = NULLIF(current_setting('molar.tenant', true), '')::bigint)
    WITH CHECK (tenant_id = NULLIF(current_setting('molar.tenant', true), '')::bigint);
CREATE POLICY tenant_isolation ON series
    USING (tenant_id = NULLIF(current_setting('molar.tenant', true), '')::bigint)
    WITH CHECK (tenant_id = NULLIF(current_setting('molar.tenant', true), '')::bigint);
CREATE POLICY tenant_isolation ON instance
    USING (tenant_id = NULLIF(current_setting('molar.tenant', true), '')::bigint)
    WITH CHECK (tenant_id = NULLIF(current_setting('molar.tenant', true), '')::bigint);
CREATE POLICY tenant_isolation ON reconciliation
    USING (tenant_id = NULLIF(current_setting('molar.tenant', true), '')::bigint)
    WITH CHECK (tenant_id = NULLIF(current_setting('molar.tenant', true), '')::bigint);
