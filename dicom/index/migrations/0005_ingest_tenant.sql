-- ingest_instance_in is ingest_instance that first scopes the transaction to
-- the tenant (the same set_config(molar.tenant, ..., true) postgres.InTenant
-- sends as a statement of its own): one round trip less per ingested
-- instance. Runs as the caller (row-level security applies); the tenant
-- setting stays for the rest of the transaction, as with InTenant.
CREATE FUNCTION ingest_instance_in(tenant bigint, p jsonb, policy text)
RETURNS TABLE (outcome text, instance_id bigint, study_ref bigint, series_ref bigint, old_key text, person_id bigint, recon_state text, new_study boolean)
LANGUAGE plpgsql AS $$
BEGIN
    IF tenant IS NULL OR (p->>'tenant_id')::bigint IS DISTINCT FROM tenant THEN
        RAISE EXCEPTION 'ingest_instance_in: tenant % does not match the record', tenant USING ERRCODE = '22023';
    END IF;
    PERFORM set_config('molar.tenant', tenant::text, true);
    RETURN QUERY SELECT * FROM dicom.ingest_instance(p, policy);
END
$$;
