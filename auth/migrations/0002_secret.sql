-- Keys the servers of an installation share, made once by whichever server
-- needs one first (e.g. 'oidc_flow', the key that seals OpenID logins in
-- flight in the browser's cookie). Never changed or removed by the server.
CREATE TABLE secret (
    name    text PRIMARY KEY,
    value   bytea NOT NULL CHECK (length(value) >= 32),
    created timestamptz NOT NULL DEFAULT now()
);
REVOKE UPDATE, DELETE, TRUNCATE ON secret FROM molar_app;

-- oidc_flow is no longer used (logins in flight live in a sealed cookie);
-- it stays for servers of the previous release during a rolling upgrade
-- and goes in a later release.
COMMENT ON TABLE oidc_flow IS 'unused since 2026-11-26; dropped in a later release';
