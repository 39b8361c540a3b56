-- Known DICOM application entities: who may associate with Molar, and where
-- C-MOVE sends. Managed with `molar ae add|list|remove` and the admin UI.
CREATE TABLE ae (
    title        text PRIMARY KEY CHECK (length(title) BETWEEN 1 AND 16 AND title = btrim(title) AND title !~ '[\\[:cntrl:]]'),
    host         text NOT NULL,
    port         integer NOT NULL CHECK (port BETWEEN 1 AND 65535),
    permissions  text[] NOT NULL DEFAULT '{}' CHECK (permissions <@ ARRAY['echo','store','find','move','get']::text[]),
    description  text NOT NULL DEFAULT '',
    created      timestamptz NOT NULL DEFAULT now(),
    updated      timestamptz NOT NULL DEFAULT now()
);
