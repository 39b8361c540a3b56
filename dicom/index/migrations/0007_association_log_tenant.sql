-- The association log is shown per municipality: each line carries the
-- tenant the association stored into and queried (its AE's, or the default
-- tenant's for an accepted unknown AE). Rejected associations have none;
-- like tenantless AEs they are shown only on a single-municipality
-- installation. Older lines get their tenant from the AE of that title.
ALTER TABLE association_log ADD COLUMN tenant_id bigint;
UPDATE association_log l SET tenant_id = ae.tenant_id FROM ae WHERE l.known_ae AND ae.title = l.calling_ae;
CREATE INDEX association_log_tenant ON association_log (tenant_id, opened DESC);
