-- Signing a version and correcting it take turns. Without this, a
-- signature and an unsigned correction of the same version, written in
-- concurrent transactions, each passed its check (neither saw the other's
-- uncommitted row), leaving a signed, locked entry replaced by an unsigned
-- correction. Both triggers now take a transaction advisory lock on the
-- version (class 0x6a726e6c "jrnl", key the entry id) before checking, and
-- their queries then see what the other committed: the later one is
-- refused (a correction of a signed entry must be signed; a replaced entry
-- cannot be signed).

CREATE OR REPLACE FUNCTION journal.check_entry() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    old_person bigint;
    old_kind   text;
BEGIN
    IF NEW.supersedes IS NOT NULL THEN
        PERFORM pg_advisory_xact_lock(1785884268, (NEW.supersedes % 2147483647)::int);
        SELECT e.person_id, e.kind INTO old_person, old_kind FROM journal.entry e WHERE e.id = NEW.supersedes;
        IF NOT FOUND THEN
            RAISE EXCEPTION 'journal: entry % to correct does not exist', NEW.supersedes;
        END IF;
        IF old_person <> NEW.person_id OR old_kind <> NEW.kind THEN
            RAISE EXCEPTION 'journal: a correction must concern the same person and kind as entry %', NEW.supersedes;
        END IF;
    END IF;
    RETURN NEW;
END
$$;

CREATE OR REPLACE FUNCTION journal.check_signature() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    author bigint;
BEGIN
    PERFORM pg_advisory_xact_lock(1785884268, (NEW.entry_id % 2147483647)::int);
    SELECT e.author_id INTO author FROM journal.entry e WHERE e.id = NEW.entry_id;
    IF author IS DISTINCT FROM NEW.signed_by THEN
        RAISE EXCEPTION 'journal: only the author signs entry %', NEW.entry_id;
    END IF;
    IF EXISTS (SELECT 1 FROM journal.entry n WHERE n.supersedes = NEW.entry_id) THEN
        RAISE EXCEPTION 'journal: entry % has been replaced and cannot be signed', NEW.entry_id;
    END IF;
    RETURN NEW;
END
$$;
