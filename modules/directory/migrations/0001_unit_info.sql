-- Contact details of the municipality's units (clinics, home-care groups …),
-- shown to staff and citizens. The units themselves belong to the core
-- register; this module keeps only what it adds, keyed by the unit's id.
CREATE TABLE unit_info (
    tenant_id     bigint NOT NULL,
    org_unit_id   bigint NOT NULL,
    phone         text NOT NULL DEFAULT '' CHECK (length(phone) <= 40),
    email         text NOT NULL DEFAULT '' CHECK (length(email) <= 200),
    address       text NOT NULL DEFAULT '' CHECK (length(address) <= 300),
    opening_hours text NOT NULL DEFAULT '' CHECK (length(opening_hours) <= 1000),
    note          text NOT NULL DEFAULT '' CHECK (length(note) <= 2000),
    updated       timestamptz NOT NULL DEFAULT now(),
    updated_by    text NOT NULL DEFAULT '',
    PRIMARY KEY (tenant_id, org_unit_id)
);

ALTER TABLE unit_info ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON unit_info
    USING (tenant_id = NULLIF(current_setting('molar.tenant', true), '')::bigint)
    WITH CHECK (tenant_id = NULLIF(current_setting('molar.tenant', true), '')::bigint);
REVOKE DELETE ON unit_info FROM molar_app;
