-- The dentist's viewer (schema "viewer"): mount templates (layouts as data),
-- mounts per patient with the image in each slot, and per-image display
-- state (window, rotation, calibration, measurements, annotations). The
-- stored DICOM objects are never changed: everything here lives beside them.

-- Mount templates. Rows with tenant_id NULL are the built-in templates every
-- municipality sees; a municipality's administrators add their own.
-- slots is a JSON array of
--   {"n": 1, "x": 10, "y": 10, "w": 150, "h": 180, "order": 1,
--    "rotate": 0|90|180|270, "flip": false, "kind": "pa"|"bw"|"pano"|"any",
--    "teeth": ["18", "17", "16"]}
-- in the template's coordinate space (width × height units).
CREATE TABLE mount_template (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id   bigint,                          -- NULL: built in, for every tenant
    code        text NOT NULL CHECK (code ~ '^[a-z0-9][a-z0-9_-]{0,39}$'),
    name_da     text NOT NULL CHECK (length(name_da) BETWEEN 1 AND 100),
    name_en     text NOT NULL CHECK (length(name_en) BETWEEN 1 AND 100),
    width       integer NOT NULL CHECK (width BETWEEN 100 AND 10000),
    height      integer NOT NULL CHECK (height BETWEEN 100 AND 10000),
    slots       jsonb NOT NULL CHECK (jsonb_typeof(slots) = 'array'),
    created     timestamptz NOT NULL DEFAULT now(),
    created_by  bigint
);
CREATE UNIQUE INDEX mount_template_code ON mount_template (coalesce(tenant_id, 0), code);
ALTER TABLE mount_template ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_read ON mount_template FOR SELECT
    USING (tenant_id IS NULL OR tenant_id = NULLIF(current_setting('molar.tenant', true), '')::bigint);
CREATE POLICY tenant_write ON mount_template FOR INSERT
    WITH CHECK (tenant_id = NULLIF(current_setting('molar.tenant', true), '')::bigint);
REVOKE UPDATE, DELETE, TRUNCATE ON mount_template FROM molar_app;

-- A mount: a template filled with one patient's images (usually of one study).
CREATE TABLE mount (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id   bigint NOT NULL,
    person_id   bigint NOT NULL,
    template_id bigint NOT NULL REFERENCES mount_template (id),
    study_uid   text NOT NULL DEFAULT '',        -- the study whose new images fall into free slots
    created     timestamptz NOT NULL DEFAULT now(),
    created_by  bigint,
    FOREIGN KEY (tenant_id, person_id) REFERENCES auth.person (tenant_id, id)
);
CREATE INDEX mount_person ON mount (tenant_id, person_id, created DESC);
ALTER TABLE mount ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON mount
    USING (tenant_id = NULLIF(current_setting('molar.tenant', true), '')::bigint)
    WITH CHECK (tenant_id = NULLIF(current_setting('molar.tenant', true), '')::bigint);
REVOKE DELETE, TRUNCATE ON mount FROM molar_app;

-- The image in each slot of a mount, with the rotation and flip it was placed with.
CREATE TABLE mount_slot (
    mount_id    bigint NOT NULL REFERENCES mount (id),
    tenant_id   bigint NOT NULL,
    slot        integer NOT NULL,
    sop_uid     text NOT NULL,
    rotate      integer NOT NULL DEFAULT 0 CHECK (rotate IN (0, 90, 180, 270)),
    flip        boolean NOT NULL DEFAULT false,
    placed      timestamptz NOT NULL DEFAULT now(),
    placed_by   bigint,                          -- NULL: placed automatically
    PRIMARY KEY (mount_id, slot),
    UNIQUE (mount_id, sop_uid)
);
ALTER TABLE mount_slot ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON mount_slot
    USING (tenant_id = NULLIF(current_setting('molar.tenant', true), '')::bigint)
    WITH CHECK (tenant_id = NULLIF(current_setting('molar.tenant', true), '')::bigint);
REVOKE TRUNCATE ON mount_slot FROM molar_app;

-- Per-image display state, measurements and annotations. Append-only: a save
-- is a new version (the latest wins); nothing is overwritten or deleted.
CREATE TABLE image_state (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id   bigint NOT NULL,
    person_id   bigint NOT NULL,
    sop_uid     text NOT NULL,
    version     integer NOT NULL CHECK (version >= 1),
    state       jsonb NOT NULL CHECK (jsonb_typeof(state) = 'object'),
    created     timestamptz NOT NULL DEFAULT now(),
    created_by  bigint NOT NULL,
    UNIQUE (tenant_id, sop_uid, version),
    FOREIGN KEY (tenant_id, person_id) REFERENCES auth.person (tenant_id, id)
);
ALTER TABLE image_state ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON image_state
    USING (tenant_id = NULLIF(current_setting('molar.tenant', true), '')::bigint)
    WITH CHECK (tenant_id = NULLIF(current_setting('molar.tenant', true), '')::bigint);
REVOKE UPDATE, DELETE, TRUNCATE ON image_state FROM molar_app;

-- Built-in templates. Coordinates: the viewer's view of the patient (the
-- patient's right on the left). Mandibular periapicals come off the sensor
-- crowns down and are turned 180° on placement.
INSERT INTO mount_template (tenant_id, code, name_da, name_en, width, height, slots) VALUES
(NULL, 'fmx', 'Fuld status (18 billeder)', 'Full-mouth series (18 images)', 1000, 600, '[
 {"n": 1,  "x": 10,  "y": 10,  "w": 150, "h": 180, "order": 1,  "rotate": 0,   "flip": false, "kind": "pa", "teeth": ["18","17","16"]},
 {"n": 2,  "x": 170, "y": 10,  "w": 150, "h": 180, "order": 2,  "rotate": 0,   "flip": false, "kind": "pa", "teeth": ["15","14"]},
 {"n": 3,  "x": 330, "y": 10,  "w": 100, "h": 180, "order": 3,  "rotate": 0,   "flip": false, "kind": "pa", "teeth": ["13"]},
 {"n": 4,  "x": 440, "y": 10,  "w": 120, "h": 180, "order": 4,  "rotate": 0,   "flip": false, "kind": "pa", "teeth": ["12","11","21","22"]},
 {"n": 5,  "x": 570, "y": 10,  "w": 100, "h": 180, "order": 5,  "rotate": 0,   "flip": false, "kind": "pa", "teeth": ["23"]},
 {"n": 6,  "x": 680, "y": 10,  "w": 150, "h": 180, "order": 6,  "rotate": 0,   "flip": false, "kind": "pa", "teeth": ["24","25"]},
 {"n": 7,  "x": 840, "y": 10,  "w": 150, "h": 180, "order": 7,  "rotate": 0,   "flip": false, "kind": "pa", "teeth": ["26","27","28"]},
 {"n": 8,  "x": 90,  "y": 210, "w": 180, "h": 170, "order": 15, "rotate": 0,   "flip": false, "kind": "bw", "teeth": ["17","16","47","46"]},
 {"n": 9,  "x": 290, "y": 210, "w": 180, "h": 170, "order": 16, "rotate": 0,   "flip": false, "kind": "bw", "teeth": ["15","14","45","44"]},
 {"n": 10, "x": 530, "y": 210, "w": 180, "h": 170, "order": 17, "rotate": 0,   "flip": false, "kind": "bw", "teeth": ["24","25","34","35"]},
 {"n": 11, "x": 730, "y": 210, "w": 180, "h": 170, "order": 18, "rotate": 0,   "flip": false, "kind": "bw", "teeth": ["26","27","36","37"]},
 {"n": 12, "x": 10,  "y": 400, "w": 150, "h": 180, "order": 14, "rotate": 180, "flip": false, "kind": "pa", "teeth": ["48","47","46"]},
 {"n": 13, "x": 170, "y": 400, "w": 150, "h": 180, "order": 13, "rotate": 180, "flip": false, "kind": "pa", "teeth": ["45","44"]},
 {"n": 14, "x": 330, "y": 400, "w": 100, "h": 180, "order": 12, "rotate": 180, "flip": false, "kind": "pa", "teeth": ["43"]},
 {"n": 15, "x": 440, "y": 400, "w": 120, "h": 180, "order": 11, "rotate": 180, "flip": false, "kind": "pa", "teeth": ["42","41","31","32"]},
 {"n": 16, "x": 570, "y": 400, "w": 100, "h": 180, "order": 10, "rotate": 180, "flip": false, "kind": "pa", "teeth": ["33"]},
 {"n": 17, "x": 680, "y": 400, "w": 150, "h": 180, "order": 9,  "rotate": 180, "flip": false, "kind": "pa", "teeth": ["34","35"]},
 {"n": 18, "x": 840, "y": 400, "w": 150, "h": 180, "order": 8,  "rotate": 180, "flip": false, "kind": "pa", "teeth": ["36","37","38"]}
]'),
(NULL, 'bw4', '4 bitewings', '4 bitewings', 1000, 260, '[
 {"n": 1, "x": 10,  "y": 20, "w": 235, "h": 220, "order": 1, "rotate": 0, "flip": false, "kind": "bw", "teeth": ["17","16","47","46"]},
 {"n": 2, "x": 255, "y": 20, "w": 235, "h": 220, "order": 2, "rotate": 0, "flip": false, "kind": "bw", "teeth": ["15","14","45","44"]},
 {"n": 3, "x": 510, "y": 20, "w": 235, "h": 220, "order": 3, "rotate": 0, "flip": false, "kind": "bw", "teeth": ["24","25","34","35"]},
 {"n": 4, "x": 755, "y": 20, "w": 235, "h": 220, "order": 4, "rotate": 0, "flip": false, "kind": "bw", "teeth": ["26","27","36","37"]}
]'),
(NULL, 'bw2pa', '2 bitewings og periapikale', '2 bitewings and periapicals', 1000, 480, '[
 {"n": 1, "x": 10,  "y": 130, "w": 300, "h": 220, "order": 1, "rotate": 0,   "flip": false, "kind": "bw", "teeth": ["16","15","14","46","45","44"]},
 {"n": 2, "x": 690, "y": 130, "w": 300, "h": 220, "order": 2, "rotate": 0,   "flip": false, "kind": "bw", "teeth": ["24","25","26","34","35","36"]},
 {"n": 3, "x": 400, "y": 10,  "w": 200, "h": 220, "order": 3, "rotate": 0,   "flip": false, "kind": "pa", "teeth": ["12","11","21","22"]},
 {"n": 4, "x": 400, "y": 250, "w": 200, "h": 220, "order": 4, "rotate": 180, "flip": false, "kind": "pa", "teeth": ["42","41","31","32"]}
]'),
(NULL, 'pano', 'Panorama', 'Panoramic', 1000, 520, '[
 {"n": 1, "x": 10, "y": 10, "w": 980, "h": 500, "order": 1, "rotate": 0, "flip": false, "kind": "pano", "teeth": []}
]');
