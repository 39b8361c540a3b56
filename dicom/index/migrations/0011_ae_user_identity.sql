-- An AE may have to sign its associations with a Molar account (User
-- Identity Negotiation, PS3.7 D.3.3.7: username and passcode, or a JWT from
-- the municipality's OpenID provider); associations without it are
-- rejected.
ALTER TABLE ae ADD COLUMN require_user boolean NOT NULL DEFAULT false;
-- The account that signed an association; NULL without user identity.
ALTER TABLE association_log ADD COLUMN user_id bigint;
