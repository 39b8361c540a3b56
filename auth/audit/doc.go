// Package audit is Molar's audit log: one row per lookup or change of a
// person's health data (Danish Health Act §42a), committed in the same
// transaction as the request it describes, sealed afterwards into a SHA-256
// hash chain by a single background sealer, and checked by Verify
// (`molar audit verify`).
//
// # Writing
//
// The auth middleware puts an Actor in the request context (WithActor).
// Handlers call Record inside their tenant transaction
// (postgres.InTenant): the row commits or rolls back with the request. A
// writer only inserts a row; it never reads or locks the chain head, so
// writers do not queue behind each other.
//
// Log fields hold identifiers, never CPR numbers or names: Object is an id
// such as "journal.entry/123", and Record refuses values that look like a CPR
// number. Username is the only name-like field.
//
// # Storage and privileges (schema "audit")
//
//   - audit.event: the rows. The runtime role (molar_app) may INSERT the
//     descriptive columns (id, time and writer transaction are always set by
//     the database) and SELECT its own tenant's rows (row-level security on
//     molar.tenant). It has no UPDATE, DELETE or TRUNCATE, and a trigger
//     refuses those statements for every role, owner and superusers included.
//     Removing that trigger takes the owner or a superuser; the hash chain
//     then shows what was changed.
//   - audit.seal: the chain, one row per event in seal order:
//     hash = SHA-256(prev_hash || canonical encoding of all event columns),
//     prev_hash of the first seal is 32 zero bytes. Sequence numbers are
//     assigned by the sealer without gaps (not a PostgreSQL sequence, which
//     would leave gaps on rollback), so a missing seal is detectable.
//   - audit.head: the end of the chain (seq, hash) and the sealing horizon.
//
// Retention: the law asks for at least 6 months; Molar keeps audit rows for
// ever. There is deliberately no delete path (no function, no privilege, no
// job). Pruning, if ever wanted, is an operator task outside the application
// and would have to re-anchor the chain.
//
// # Sealing
//
// Sealer.Run seals rows in passes: a pass takes the snapshot xmin once, lists
// the ids of the rows to seal below it, and seals them in batches (1000 rows
// per transaction by default). Only one sealer works at a time, even
// with several servers: each batch runs in a transaction that takes a
// transaction-level advisory lock (pg_try_advisory_xact_lock; a busy lock
// means another server is sealing, and this one skips the round) and locks
// the head row.
//
// A row is sealed only once its writer transaction has finished:
// writer_xid < xmin of the sealer's snapshot. Rows are then sealed in id
// order. A transaction that took a low id but commits late is sealed in a
// later batch, after rows with higher ids: the chain order is the seal order,
// not the id order. Every batch that drains all finished writers records that
// xmin as the horizon; from then on every committed row with a lower
// writer_xid is sealed, so the sealer only reads rows at or above the horizon
// (an index range), and an unsealed row below it can only have been put there
// by hand. The sealer never seals such a row: it stays unsealed for Verify to
// report. A long-running write transaction anywhere in the database holds the
// horizon back and delays sealing (not writing) until it ends.
//
// The sealer runs as the runtime role. Row-level security would hide other
// tenants' rows from it, and no role has BYPASSRLS; instead it reads through
// SECURITY DEFINER functions owned by molar_owner (audit.unsealed_ids,
// audit.seal_candidates, audit.chain_page, audit.unsealed_page), which return
// ids or exactly the columns the hash covers and change nothing. The price:
// any code running as the runtime role could read other tenants' audit rows
// through them; application code does not, and AccessLog reads only through
// row-level security. It may INSERT into audit.seal (only
// seq, event_id, prev_hash and hash; a trigger refuses a seal that does not
// extend the chain) and UPDATE audit.head (a trigger lets it move only
// forward, to the last seal). It has no write privilege on audit.event beyond
// INSERT.
//
// After each batch the sealer logs the new head at info level
// ("audit chain sealed", anchor="SEQ:HASH"), with no personal data, so an
// external log collector keeps anchors. Verify can check the chain against
// such anchors (VerifyOptions.Anchors): that catches even a superuser who
// rewrote and re-hashed the whole chain.
//
// # Verifying
//
// Verify walks the chain from the first seal in one REPEATABLE READ
// snapshot, recomputes every hash and reports:
//
//   - changed: an event's columns no longer match its seal;
//   - removed: a seal points to a missing event, or seal numbers have a gap;
//   - link: a seal does not link to the previous seal (seal rows altered);
//   - inserted: an event without a seal that the sealer would have sealed
//     already (writer_xid below the horizon), or whose id is below the
//     highest sealed id while its time is older than the last seal by more
//     than VerifyOptions.Grace (default 5 minutes);
//   - head: audit.head does not match the end of the chain;
//   - anchor: a seal no longer has the hash of an external anchor.
//
// Limits: a superuser who inserts a row that looks freshly written (current
// transaction id and time) before the sealer runs is indistinguishable from a
// real writer; a superuser who rewrites the whole chain is caught only by
// external anchors. A write transaction held open longer than Grace may be
// reported as inserted in the seconds between its commit and the next seal.
//
// The canonical encoding (version 1) covers id, at, tenant_id, user_id,
// username, role, action, person_id, object, request_id, source_addr,
// break_glass_reason, detail and writer_xid. A new column needs a new
// encoding version.
package audit
