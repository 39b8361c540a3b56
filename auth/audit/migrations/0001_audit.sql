-- Audit log of every lookup and change of health data (Danish Health Act
-- §42a). See auth/audit/doc.go for the design. Rules enforced here:
--
--  * audit.event is append-only. The runtime role may INSERT (only the
--    descriptive columns: id, time and writer transaction are always filled by
--    the database) and SELECT its tenant's rows; it has no UPDATE, DELETE or
--    TRUNCATE. A trigger refuses UPDATE, DELETE and TRUNCATE for everybody,
--    the owner and superusers included, until someone drops or disables it,
--    which the hash chain (audit.seal) then exposes.
--  * Retention: rows are kept for ever (the law asks for at least 6 months).
--    Nothing in Molar deletes them and no role has a delete path.
--  * audit.seal is the hash chain written by the single background sealer,
--    audit.head its current end. The runtime role may append seals (a trigger
--    checks that each one links to the previous) and move the head forward to
--    an existing seal; it can neither change nor delete either.

CREATE TABLE audit.event (
    id                 bigserial   PRIMARY KEY,
    at                 timestamptz NOT NULL DEFAULT clock_timestamp(),
    tenant_id          bigint      NOT NULL,
    user_id            bigint,
    username           text        NOT NULL DEFAULT '',
    role               text        NOT NULL DEFAULT '',
    action             text        NOT NULL CHECK (action ~ '^[a-z_]{1,32}$'),
    person_id          bigint,
    object             text        NOT NULL DEFAULT '',
    request_id         text        NOT NULL DEFAULT '',
    source_addr        inet,
    break_glass_reason text,
    detail             jsonb,
    -- The writing transaction (64-bit, epoch-extended). The sealer only seals
    -- rows whose writer has finished: writer_xid < xmin of its snapshot.
    writer_xid         bigint      NOT NULL DEFAULT txid_current()
);

-- "Who accessed person X", newest first, per tenant.
CREATE INDEX event_person_idx ON audit.event (tenant_id, person_id, at DESC, id DESC)
    WHERE person_id IS NOT NULL;
-- The sealer looks only at recent writers: writer_xid >= its last horizon.
CREATE INDEX event_writer_xid_idx ON audit.event (writer_xid);

CREATE TABLE audit.seal (
    seq       bigint      PRIMARY KEY CHECK (seq > 0),
    event_id  bigint      NOT NULL UNIQUE,
    prev_hash bytea       NOT NULL,
    hash      bytea       NOT NULL CHECK (length(hash) = 32),
    sealed_at timestamptz NOT NULL DEFAULT clock_timestamp()
);

CREATE TABLE audit.head (
    id          int         PRIMARY KEY CHECK (id = 1),
    seq         bigint      NOT NULL,
    hash        bytea       NOT NULL,
    -- Every committed event whose writer_xid is below the horizon is sealed.
    horizon_xid bigint      NOT NULL,
    sealed_at   timestamptz
);
INSERT INTO audit.head (id, seq, hash, horizon_xid) VALUES (1, 0, decode(repeat('00', 32), 'hex'), 0);

-- Append-only, for every role.
CREATE FUNCTION audit.refuse_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit: %.% is append-only: % refused', TG_TABLE_SCHEMA, TG_TABLE_NAME, TG_OP
        USING HINT = 'Audit rows are kept and never changed or deleted (Health Act §42a).';
END
$$;

CREATE TRIGGER append_only BEFORE UPDATE OR DELETE ON audit.event
    FOR EACH ROW EXECUTE FUNCTION audit.refuse_change();
CREATE TRIGGER append_only_truncate BEFORE TRUNCATE ON audit.event
    FOR EACH STATEMENT EXECUTE FUNCTION audit.refuse_change();
CREATE TRIGGER append_only BEFORE UPDATE OR DELETE ON audit.seal
    FOR EACH ROW EXECUTE FUNCTION audit.refuse_change();
CREATE TRIGGER append_only_truncate BEFORE TRUNCATE ON audit.seal
    FOR EACH STATEMENT EXECUTE FUNCTION audit.refuse_change();
CREATE TRIGGER append_only BEFORE DELETE ON audit.head
    FOR EACH ROW EXECUTE FUNCTION audit.refuse_change();
CREATE TRIGGER append_only_truncate BEFORE TRUNCATE ON audit.head
    FOR EACH STATEMENT EXECUTE FUNCTION audit.refuse_change();

-- A new seal must extend the chain: the next sequence number, linked to the
-- hash of the seal before it. (Whether the hash matches the event is checked
-- by Verify; SQL cannot recompute the canonical encoding.)
CREATE FUNCTION audit.check_seal() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    prev bytea;
BEGIN
    IF NEW.seq = 1 THEN
        prev := decode(repeat('00', 32), 'hex');
    ELSE
        SELECT s.hash INTO prev FROM audit.seal s WHERE s.seq = NEW.seq - 1;
        IF NOT FOUND THEN
            RAISE EXCEPTION 'audit: seal % does not extend the chain (seal % missing)', NEW.seq, NEW.seq - 1;
        END IF;
    END IF;
    IF NEW.prev_hash IS DISTINCT FROM prev THEN
        RAISE EXCEPTION 'audit: seal % does not link to the hash of seal %', NEW.seq, NEW.seq - 1;
    END IF;
    RETURN NEW;
END
$$;
CREATE TRIGGER check_seal BEFORE INSERT ON audit.seal
    FOR EACH ROW EXECUTE FUNCTION audit.check_seal();

-- The head only moves forward, to the last seal.
CREATE FUNCTION audit.check_head() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.id <> OLD.id OR NEW.seq < OLD.seq OR NEW.horizon_xid < OLD.horizon_xid THEN
        RAISE EXCEPTION 'audit: the chain head only moves forward';
    END IF;
    IF NEW.seq = 0 THEN
        IF NEW.hash IS DISTINCT FROM decode(repeat('00', 32), 'hex') THEN
            RAISE EXCEPTION 'audit: the empty chain has the zero hash';
        END IF;
    ELSIF NEW.hash IS DISTINCT FROM (SELECT s.hash FROM audit.seal s WHERE s.seq = NEW.seq) THEN
        RAISE EXCEPTION 'audit: head % does not match seal %', NEW.seq, NEW.seq;
    END IF;
    IF EXISTS (SELECT 1 FROM audit.seal s WHERE s.seq > NEW.seq) THEN
        RAISE EXCEPTION 'audit: head % is not the end of the chain', NEW.seq;
    END IF;
    RETURN NEW;
END
$$;
CREATE TRIGGER check_head BEFORE UPDATE ON audit.head
    FOR EACH ROW EXECUTE FUNCTION audit.check_head();

-- Tenant isolation for the runtime role. The owner (and SECURITY DEFINER
-- functions owned by it) is exempt: row-level security is enabled, not forced.
ALTER TABLE audit.event ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_read ON audit.event FOR SELECT TO molar_app
    USING (tenant_id = NULLIF(current_setting('molar.tenant', true), '')::bigint);
CREATE POLICY tenant_write ON audit.event FOR INSERT TO molar_app
    WITH CHECK (tenant_id = NULLIF(current_setting('molar.tenant', true), '')::bigint);

-- Cross-tenant reads for the sealer and Verify. They run as the runtime role
-- (no BYPASSRLS anywhere); these functions run as the owner, return exactly
-- the columns the hash covers and cannot change anything.
-- Events to seal: writer in [p_from_xid, p_below_xid), not sealed yet, in id
-- order. The sealer takes the ids once per pass (an index range on
-- writer_xid), then reads the rows by id in batches.
CREATE FUNCTION audit.unsealed_ids(p_from_xid bigint, p_below_xid bigint, p_limit int)
RETURNS SETOF bigint
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
    SELECT e.id
      FROM audit.event e
     WHERE e.writer_xid >= p_from_xid AND e.writer_xid < p_below_xid
       AND NOT EXISTS (SELECT 1 FROM audit.seal s WHERE s.event_id = e.id)
     ORDER BY e.id
     LIMIT p_limit
$$;

CREATE FUNCTION audit.seal_candidates(p_ids bigint[])
RETURNS TABLE (
    id bigint, at timestamptz, tenant_id bigint, user_id bigint, username text, role text,
    action text, person_id bigint, object text, request_id text, source_addr text,
    break_glass_reason text, detail text, writer_xid bigint)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
    SELECT e.id, e.at, e.tenant_id, e.user_id, e.username, e.role, e.action, e.person_id,
           e.object, e.request_id, e.source_addr::text, e.break_glass_reason, e.detail::text,
           e.writer_xid
      FROM audit.event e
     WHERE e.id = ANY (p_ids)
       AND NOT EXISTS (SELECT 1 FROM audit.seal s WHERE s.event_id = e.id)
     ORDER BY e.id
$$;

CREATE FUNCTION audit.chain_page(p_after_seq bigint, p_limit int)
RETURNS TABLE (
    seq bigint, event_id bigint, prev_hash bytea, hash bytea, sealed_at timestamptz,
    id bigint, at timestamptz, tenant_id bigint, user_id bigint, username text, role text,
    action text, person_id bigint, object text, request_id text, source_addr text,
    break_glass_reason text, detail text, writer_xid bigint)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
    SELECT s.seq, s.event_id, s.prev_hash, s.hash, s.sealed_at,
           e.id, e.at, e.tenant_id, e.user_id, e.username, e.role, e.action, e.person_id,
           e.object, e.request_id, e.source_addr::text, e.break_glass_reason, e.detail::text,
           e.writer_xid
      FROM audit.seal s
      LEFT JOIN audit.event e ON e.id = s.event_id
     WHERE s.seq > p_after_seq
     ORDER BY s.seq
     LIMIT p_limit
$$;

-- Events without a seal (no personal data: id, time, writer only).
CREATE FUNCTION audit.unsealed_page(p_after_id bigint, p_limit int)
RETURNS TABLE (id bigint, at timestamptz, writer_xid bigint)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
    SELECT e.id, e.at, e.writer_xid
      FROM audit.event e
     WHERE e.id > p_after_id
       AND NOT EXISTS (SELECT 1 FROM audit.seal s WHERE s.event_id = e.id)
     ORDER BY e.id
     LIMIT p_limit
$$;

-- Privileges. The migration runner's default privileges gave the runtime
-- role SELECT, INSERT, UPDATE, DELETE on every table: take them back.
REVOKE ALL ON audit.event, audit.seal, audit.head FROM PUBLIC;
REVOKE ALL ON audit.event, audit.seal, audit.head FROM molar_app;
GRANT SELECT ON audit.event TO molar_app;
GRANT INSERT (tenant_id, user_id, username, role, action, person_id, object, request_id,
              source_addr, break_glass_reason, detail) ON audit.event TO molar_app;
GRANT SELECT ON audit.seal TO molar_app;
GRANT INSERT (seq, event_id, prev_hash, hash) ON audit.seal TO molar_app;
GRANT SELECT ON audit.head TO molar_app;
GRANT UPDATE (seq, hash, horizon_xid, sealed_at) ON audit.head TO molar_app;
-- nextval() for audit.event.id only; no setval (that needs UPDATE).
REVOKE ALL ON SEQUENCE audit.event_id_seq FROM molar_app;
GRANT USAGE ON SEQUENCE audit.event_id_seq TO molar_app;

REVOKE ALL ON FUNCTION audit.refuse_change(), audit.check_seal(), audit.check_head() FROM PUBLIC, molar_app;
REVOKE ALL ON FUNCTION audit.unsealed_ids(bigint, bigint, int), audit.seal_candidates(bigint[]), audit.chain_page(bigint, int),
    audit.unsealed_page(bigint, int) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION audit.unsealed_ids(bigint, bigint, int), audit.seal_candidates(bigint[]), audit.chain_page(bigint, int),
    audit.unsealed_page(bigint, int) TO molar_app;
