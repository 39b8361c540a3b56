-- thumbnail_queue is the outbox of thumbnail work: one row for every
-- instance row inserted or pointed at a new object, written by the trigger
-- below inside the ingest transaction (no round trip of its own, and the
-- row exists exactly when the instance does). The server moves queued keys
-- into thumbnail jobs in batches (dicom/thumb Dispatch). Object keys only:
-- nothing about a person, so no tenant column and no row-level security.
CREATE TABLE thumbnail_queue (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    object_key text NOT NULL,
    queued     timestamptz NOT NULL DEFAULT now()
);
REVOKE TRUNCATE ON thumbnail_queue FROM molar_app;

CREATE FUNCTION queue_thumbnail() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE' AND OLD.object_key IS NOT DISTINCT FROM NEW.object_key THEN
        RETURN NULL;
    END IF;
    INSERT INTO dicom.thumbnail_queue (object_key) VALUES (NEW.object_key);
    RETURN NULL;
END
$$;

CREATE TRIGGER queue_thumbnail AFTER INSERT OR UPDATE OF object_key ON instance
    FOR EACH ROW EXECUTE FUNCTION queue_thumbnail();
