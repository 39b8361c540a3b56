-- OpenID Connect logins in flight now live in a sealed cookie in the
-- browser (auth/oidcflow.go): starting a login stores nothing here.
DROP TABLE oidc_flow;
