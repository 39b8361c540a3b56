-- An AE belongs to a municipality (tenant): what it stores lands in that
-- tenant's index and its queries see only that tenant. NULL = the default
-- tenant (the only one of a single-municipality installation).
ALTER TABLE ae ADD COLUMN tenant_id bigint REFERENCES auth.tenant (id);
CREATE INDEX ae_tenant ON ae (tenant_id);
