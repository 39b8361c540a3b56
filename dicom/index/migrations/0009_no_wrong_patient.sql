-- An instance is never filed under another patient's study, nor a series
-- under another study: an object whose Study Instance UID names a study of
-- another Patient ID (wrong-patient filing: its images would show in that
-- patient's record), or whose Series Instance UID names a series of another
-- study, is refused (SQLSTATE P0001, message "molar: …"; the ingest answers
-- it as a failure and stores nothing). It used to be filed silently under
-- the first patient's study or series. A study staff have reconciled
-- (link, correct, merge) takes a resend with the old Patient ID (one its
-- instances were sent with), no other. (The rest is as in 0008.)
CREATE OR REPLACE FUNCTION ingest_instance(p jsonb, policy text)
RETURNS TABLE (outcome text, instance_id bigint, study_ref bigint, series_ref bigint, old_key text, person_id bigint, recon_state text, new_study boolean)
LANGUAGE plpgsql AS $$
DECLARE
    t      bigint := (p->>'tenant_id')::bigint;
    v_pat  bigint;
    v_st   bigint;
    v_st_pat bigint;
    v_se   bigint;
    v_se_st bigint;
    v_ins  bigint;
    v_person bigint;
    v_state text;
    v_note text := '';
    v_new  boolean := false;
    v_mods text[];
    v_classes text[];
    old    record;
    per    record;
    v_sha  bytea := decode(p->>'sha256', 'hex');
BEGIN
    SELECT i.id, i.sha256, i.object_key, i.source_ae, i.study_ref, i.series_ref, i.person_id, s.study_uid, se.series_uid INTO old
      FROM dicom.instance i JOIN dicom.study s ON s.id = i.study_ref JOIN dicom.series se ON se.id = i.series_ref
     WHERE i.tenant_id = t AND i.sop_instance_uid = p->>'sop_instance_uid' FOR UPDATE OF i;
    IF FOUND THEN
        SELECT s.recon_state INTO v_state FROM dicom.study s WHERE s.id = old.study_ref;
        IF old.sha256 = v_sha THEN
            RETURN QUERY SELECT 'identical'::text, old.id, old.study_ref, old.series_ref, NULL::text, old.person_id, v_state, false;
            RETURN;
        END IF;
        -- An object of another study or series under a stored SOP Instance
        -- UID is a UID collision, not a corrected image: it never replaces
        -- the stored one (the row would stay filed under the old study).
        IF policy = 'keep-first' OR (policy = 'overwrite-same-source' AND old.source_ae IS DISTINCT FROM p->>'source_ae')
           OR old.study_uid IS DISTINCT FROM p->>'study_uid' OR old.series_uid IS DISTINCT FROM p->>'series_uid' THEN
            RETURN QUERY SELECT 'kept-first'::text, old.id, old.study_ref, old.series_ref, NULL::text, old.person_id, v_state, false;
            RETURN;
        END IF;
        UPDATE dicom.instance i SET
            sop_class_uid = p->>'sop_class_uid', instance_number = (p->>'instance_number')::integer,
            transfer_syntax = p->>'transfer_syntax', object_key = p->>'object_key', size = (p->>'size')::bigint,
            sha256 = v_sha, source_ae = coalesce(p->>'source_ae', ''), rows = (p->>'rows')::integer,
            columns = (p->>'columns')::integer, frames = (p->>'frames')::integer,
            content_date = (p->>'content_date')::date, content_time = (p->>'content_time')::time,
            image_laterality = coalesce(p->>'image_laterality', ''),
            tooth_codes = coalesce(ARRAY(SELECT jsonb_array_elements_text(p->'tooth_codes')), '{}'),
            attrs = coalesce(p->'attrs', '{}'), updated = now()
          WHERE i.id = old.id;
        RETURN QUERY SELECT 'overwritten'::text, old.id, old.study_ref, old.series_ref, old.object_key, old.person_id, v_state, false;
        RETURN;
    END IF;

    -- Patient: first values for a Patient ID win.
    INSERT INTO dicom.patient AS pt (tenant_id, patient_id, issuer, name, name_ci, name_fuzzy, birth_date, sex)
    VALUES (t, p->>'patient_id', coalesce(p->>'issuer', ''), coalesce(p->>'patient_name', ''), coalesce(p->>'name_ci', ''),
            coalesce(p->>'name_fuzzy', ''), (p->>'birth_date')::date, coalesce(p->>'sex', ''))
    ON CONFLICT (tenant_id, patient_id, issuer) DO NOTHING
    RETURNING pt.id INTO v_pat;
    IF v_pat IS NULL THEN
        SELECT pt.id INTO v_pat FROM dicom.patient pt WHERE pt.tenant_id = t AND pt.patient_id = p->>'patient_id' AND pt.issuer = coalesce(p->>'issuer', '');
    END IF;

    -- Study.
    SELECT s.id, s.person_id, s.recon_state, s.modalities, s.sop_classes, s.patient_ref INTO v_st, v_person, v_state, v_mods, v_classes, v_st_pat
      FROM dicom.study s WHERE s.tenant_id = t AND s.study_uid = p->>'study_uid';
    IF v_st IS NULL THEN
        -- Reconcile against the register: the CPR number (Patient ID) must
        -- name a person of this tenant whose name and birth date agree.
        v_state := 'unmatched';
        IF coalesce(p->>'cpr', '') = '' THEN
            v_note := 'patient id is not a cpr number';
        ELSE
            SELECT ap.id, ap.given_name, ap.family_name, ap.birth_date INTO per FROM auth.person ap WHERE ap.cpr = p->>'cpr';
            IF NOT FOUND THEN
                v_note := 'no person with this cpr number';
            ELSIF (p->>'birth_date') IS NOT NULL AND per.birth_date IS NOT NULL AND per.birth_date <> (p->>'birth_date')::date THEN
                v_state := 'conflict'; v_note := 'birth date differs'; v_person := NULL;
            ELSIF NOT dicom.names_agree(p->>'name_fuzzy', dicom.fuzzy_key(per.given_name || ' ' || per.family_name)) THEN
                v_state := 'conflict'; v_note := 'name differs';
            ELSE
                v_state := 'matched'; v_person := per.id;
            END IF;
        END IF;
        INSERT INTO dicom.study AS s (tenant_id, patient_ref, study_uid, study_date, study_time, accession, study_id, description,
            description_ci, referring, referring_ci, referring_fuzzy, modalities, sop_classes, patient_name, patient_birth,
            person_id, recon_state, recon_note)
        VALUES (t, v_pat, p->>'study_uid', (p->>'study_date')::date, (p->>'study_time')::time, coalesce(p->>'accession', ''),
            coalesce(p->>'study_id', ''), coalesce(p->>'study_desc', ''), coalesce(p->>'study_desc_ci', ''),
            coalesce(p->>'referring', ''), coalesce(p->>'referring_ci', ''), coalesce(p->>'referring_fuzzy', ''),
            CASE WHEN coalesce(p->>'modality', '') = '' THEN '{}'::text[] ELSE ARRAY[p->>'modality'] END,
            ARRAY[p->>'sop_class_uid'], coalesce(p->>'patient_name', ''), (p->>'birth_date')::date,
            v_person, v_state, v_note)
        ON CONFLICT (tenant_id, study_uid) DO NOTHING
        RETURNING s.id INTO v_st;
        IF v_st IS NULL THEN -- a concurrent ingest created it
            SELECT s.id, s.person_id, s.recon_state, s.modalities, s.sop_classes, s.patient_ref INTO v_st, v_person, v_state, v_mods, v_classes, v_st_pat
              FROM dicom.study s WHERE s.tenant_id = t AND s.study_uid = p->>'study_uid';
        ELSE
            v_new := true;
            IF v_state = 'matched' THEN
                UPDATE dicom.patient pt SET person_id = v_person, updated = now() WHERE pt.id = v_pat AND pt.person_id IS NULL;
                INSERT INTO dicom.reconciliation (tenant_id, study_ref, action, person_id, actor)
                VALUES (t, v_st, 'auto-match', v_person, 'ingest');
            END IF;
        END IF;
    END IF;
    -- Unless staff have reconciled the study (linked, corrected or merged
    -- it) and the instance carries a Patient ID the study's instances were
    -- sent with: then the study's patient is theirs, and a resend carrying
    -- the old, wrong Patient ID belongs to it. Any other Patient ID is
    -- still another patient (a reconciled study is not open to everyone).
    IF NOT v_new AND v_st_pat IS DISTINCT FROM v_pat AND NOT (
        EXISTS (SELECT 1 FROM dicom.reconciliation r WHERE r.study_ref = v_st AND r.action IN ('link', 'correct', 'merge'))
        AND EXISTS (SELECT 1 FROM dicom.instance i WHERE i.study_ref = v_st
            AND btrim(coalesce(i.attrs->'00100020'->'Value'->>0, '')) = coalesce(p->>'patient_id', '')
            AND btrim(coalesce(i.attrs->'00100021'->'Value'->>0, '')) = btrim(coalesce(p->>'issuer', '')))) THEN
        RAISE EXCEPTION 'molar: the study belongs to another patient (its Patient ID differs)' USING ERRCODE = 'P0001';
    END IF;
    IF NOT v_new THEN
        -- Only touch the study row when it learns something (no lock otherwise).
        IF coalesce(p->>'modality', '') <> '' AND NOT (p->>'modality' = ANY (v_mods)) THEN
            UPDATE dicom.study s SET modalities = array_append(s.modalities, p->>'modality'), updated = now()
             WHERE s.id = v_st AND NOT (p->>'modality' = ANY (s.modalities));
        END IF;
        IF NOT (p->>'sop_class_uid' = ANY (v_classes)) THEN
            UPDATE dicom.study s SET sop_classes = array_append(s.sop_classes, p->>'sop_class_uid'), updated = now()
             WHERE s.id = v_st AND NOT (p->>'sop_class_uid' = ANY (s.sop_classes));
        END IF;
    END IF;

    -- Series.
    SELECT se.id, se.study_ref INTO v_se, v_se_st FROM dicom.series se WHERE se.tenant_id = t AND se.series_uid = p->>'series_uid';
    IF v_se IS NOT NULL AND v_se_st <> v_st THEN
        RAISE EXCEPTION 'molar: the series belongs to another study (Series UID in use)' USING ERRCODE = 'P0001';
    END IF;
    IF v_se IS NULL THEN
        INSERT INTO dicom.series AS se (tenant_id, study_ref, series_uid, modality, series_number, description, description_ci,
            body_part, series_date, series_time, station_name, laterality)
        VALUES (t, v_st, p->>'series_uid', coalesce(p->>'modality', ''), (p->>'series_number')::integer,
            coalesce(p->>'series_desc', ''), coalesce(p->>'series_desc_ci', ''), coalesce(p->>'body_part', ''),
            (p->>'series_date')::date, (p->>'series_time')::time, coalesce(p->>'station', ''), coalesce(p->>'laterality', ''))
        ON CONFLICT (tenant_id, series_uid) DO NOTHING
        RETURNING se.id INTO v_se;
        IF v_se IS NULL THEN
            SELECT se.id, se.study_ref INTO v_se, v_se_st FROM dicom.series se WHERE se.tenant_id = t AND se.series_uid = p->>'series_uid';
            IF v_se_st <> v_st THEN
                RAISE EXCEPTION 'molar: the series belongs to another study (Series UID in use)' USING ERRCODE = 'P0001';
            END IF;
        END IF;
    END IF;

    INSERT INTO dicom.instance AS i (tenant_id, series_ref, study_ref, sop_instance_uid, sop_class_uid, instance_number,
        transfer_syntax, object_key, size, sha256, source_ae, rows, columns, frames, content_date, content_time,
        image_laterality, tooth_codes, person_id, attrs)
    VALUES (t, v_se, v_st, p->>'sop_instance_uid', p->>'sop_class_uid', (p->>'instance_number')::integer,
        p->>'transfer_syntax', p->>'object_key', (p->>'size')::bigint, v_sha, coalesce(p->>'source_ae', ''),
        (p->>'rows')::integer, (p->>'columns')::integer, (p->>'frames')::integer,
        (p->>'content_date')::date, (p->>'content_time')::time, coalesce(p->>'image_laterality', ''),
        coalesce(ARRAY(SELECT jsonb_array_elements_text(p->'tooth_codes')), '{}'), v_person, coalesce(p->'attrs', '{}'))
    RETURNING i.id INTO v_ins;
    RETURN QUERY SELECT 'stored'::text, v_ins, v_st, v_se, NULL::text, v_person, v_state, v_new;
END
$$;
