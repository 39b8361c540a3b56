-- thumbnail_queue is the outbox of thumbnail work: one row for every
-- instance row inserted or pointed at a new object, written by the trigger
-- below inside the ingest transaction (no round trip of its own, and the
-- row exists exactly when the instance does: deleting the instance, or
-- pointing it at another object, takes the row back if it is still
-- queued). The server moves queued keys into thumbnail jobs in batches
-- (dicom/thumb Dispatch; its row locks need UPDATE, which the runtime role
-- has on every table). Object keys only: nothing about a person, so no
-- tenant column and no row-level security.
CREATE TABLE thumbnail_queue (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    object_key text NOT NULL,
    queued     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX thumbnail_queue_key ON thumbnail_queue (object_key);

CREATE FUNCTION queue_thumbnail() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO dicom.thumbnail_queue (object_key) VALUES (NEW.object_key);
    ELSIF TG_OP = 'DELETE' THEN
        DELETE FROM dicom.thumbnail_queue q WHERE q.object_key = OLD.object_key;
    ELSIF OLD.object_key IS DISTINCT FROM NEW.object_key THEN
        DELETE FROM dicom.thumbnail_queue q WHERE q.object_key = OLD.object_key;
        INSERT INTO dicom.thumbnail_queue (object_key) VALUES (NEW.object_key);
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER queue_thumbnail AFTER INSERT OR UPDATE OF object_key OR DELETE ON instance
    FOR EACH ROW EXECUTE FUNCTION queue_thumbnail();
