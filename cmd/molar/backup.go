package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	neturl "net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/dustin/go-humanize"
	"github.com/jackc/pgx/v5"
	"github.com/schollz/progressbar/v3"

	"github.com/molar-health/molar/auth/audit"
	"github.com/molar-health/molar/dicom/index"
	"github.com/molar-health/molar/storage"
	"github.com/molar-health/molar/storage/postgres"
)

// A backup is a folder:
//
//	molar-backup.json   the manifest (backupManifest), written last
//	database.pgdump     pg_dump's custom format, taken in one snapshot
//	objects/<key>       every instance object the snapshot refers to
//
// Thumbnails are not copied: they are made again on demand. The objects are
// those of the database snapshot, each checked against the size and
// SHA-256 its row acknowledges as it is copied, so a backup that completes
// is consistent and whole; one that cannot copy an object fails (an
// instance deleted while the backup ran: run it again).
const (
	backupFormat   = 1
	backupManifest = "molar-backup.json"
	backupDump     = "database.pgdump"
	backupObjects  = "objects"
	backupParallel = 4
	backupPage     = 1000
)

type manifest struct {
	Format    int       `json:"format"`
	Created   time.Time `json:"created"`
	Molar     string    `json:"molar_version"`
	Instances int64     `json:"instances"`
	Bytes     int64     `json:"bytes"`
	// Objects is false for --database-only (the store is backed up by
	// other means, e.g. S3 bucket replication).
	Objects bool `json:"objects"`
	// DumpSHA256 is the SHA-256 of database.pgdump (hex), checked before
	// a restore touches anything.
	DumpSHA256 string `json:"database_sha256,omitempty"`
}

// cmdBackup is `molar backup --out DIR [--database-only] [--quiet]`.
func cmdBackup(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	var out string
	var dbOnly, quiet bool
	cfg, fset, err := parseConfigWith("cmd", "backup", args, getenv, stderr, storeFlags(), func(fs flagSet) {
		fs.StringVar(&out, "out", "", "a new or empty folder for the backup")
		fs.BoolVar(&dbOnly, "database-only", false, "dump the database only (the object store is backed up by other means)")
		fs.BoolVar(&quiet, "quiet", false, "no progress bar")
	})
	if err != nil {
		return err
	}
	if fset.NArg() > 0 {
		return usageError{fmt.Errorf("unexpected argument %q", fset.Arg(0))}
	}
	if out == "" {
		return usageError{errors.New("usage: molar backup --out DIR [--database-only] [--quiet]")}
	}
	if err := newEmptyDir(out); err != nil {
		return err
	}
	db, store, _, err := openDBAndStore(ctx, cfg)
	if err != nil {
		return err
	}
	defer db.close(ctx)

	// One snapshot for the dump and the list of objects.
	conn, err := pgx.Connect(ctx, db.ownerURL)
	if err != nil {
		return fmt.Errorf("backup: connect: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	tx, err := conn.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	var snapshot string
	if err := tx.QueryRow(ctx, `SELECT pg_export_snapshot()`).Scan(&snapshot); err != nil {
		return fmt.Errorf("backup: export snapshot: %w", err)
	}
	dump := filepath.Join(out, backupDump)
	// Made here, private: pg_dump writes into it and keeps its mode (its
	// own file would be 0644 under the usual umask).
	f, err := os.OpenFile(dump, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	if err := pgTool(ctx, db, "pg_dump", "--format=custom", "--snapshot="+snapshot, "--file="+dump, "--dbname="+db.ownerURL); err != nil {
		return fmt.Errorf("backup: database: %w", err)
	}
	if err := syncFile(dump); err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	sum, err := fileSHA256(dump)
	if err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	m := manifest{Format: backupFormat, Created: time.Now().UTC(), Molar: version, Objects: !dbOnly, DumpSHA256: sum}
	tenants, err := index.TenantIDs(ctx, tx)
	if err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	for _, t := range tenants {
		if err := inSnapshotTenant(ctx, tx, t); err != nil {
			return err
		}
		n, b, err := index.CountObjects(ctx, tx)
		if err != nil {
			return err
		}
		m.Instances, m.Bytes = m.Instances+n, m.Bytes+b
	}
	if !dbOnly {
		bar := newBar(quiet, stderr, m.Bytes, "copying objects")
		problems, err := copyObjects(ctx, m.Bytes, bar, func(fn func(index.ObjectRef) error) error {
			for _, t := range tenants {
				if err := inSnapshotTenant(ctx, tx, t); err != nil {
					return err
				}
				err := index.EachObjectRef(backupPage, func(after int64, limit int) ([]index.ObjectRef, error) {
					return index.ObjectRefs(ctx, tx, after, limit)
				}, fn)
				if err != nil {
					return err
				}
			}
			return nil
		}, func(ref index.ObjectRef) error { return backupObject(ctx, store, out, ref) }, stdout)
		if bar != nil {
			_ = bar.Finish()
		}
		if err != nil {
			return fmt.Errorf("backup: %w", err)
		}
		if problems > 0 {
			return fmt.Errorf("backup: %d object(s) could not be copied as acknowledged (listed above; an instance deleted while the backup ran: run it again); the backup in %s is incomplete", problems, out)
		}
		if err := syncTree(filepath.Join(out, backupObjects)); err != nil {
			return fmt.Errorf("backup: %w", err)
		}
	}
	_ = tx.Rollback(ctx)
	if err := writeManifest(out, m); err != nil {
		return err
	}
	// The backup copied every municipality's health data: each one's audit
	// log says so (no person: nobody's record was looked at).
	for _, t := range tenants {
		actx := audit.WithActor(ctx, audit.Actor{Username: "system:backup", Role: "system", TenantID: t})
		err := postgres.InTenant(actx, db.pool, t, func(tx pgx.Tx) error {
			return audit.Record(actx, tx, audit.Event{Action: audit.ActionExport, Object: "backup",
				Detail: map[string]any{"instances": m.Instances, "database_only": dbOnly}})
		})
		if err != nil {
			return fmt.Errorf("backup: audit: %w", err)
		}
	}
	what := fmt.Sprintf("the database and %d instance objects (%s, each checked against its SHA-256)", m.Instances, humanize.IBytes(uint64(m.Bytes)))
	if dbOnly {
		what = fmt.Sprintf("the database (%d instances indexed; objects not copied)", m.Instances)
	}
	fmt.Fprintf(stdout, "backup of %s in %s\n", what, out)
	return nil
}

// cmdRestore is `molar restore --from DIR [--database-only|--objects-only]
// [--quiet]`: into a new installation (an empty database) only; with
// --objects-only the objects again, for a database restored already (a
// restore that stopped while it put the objects back).
func cmdRestore(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	var from string
	var dbOnly, objectsOnly, quiet bool
	cfg, fset, err := parseConfigWith("cmd", "restore", args, getenv, stderr, storeFlags(), func(fs flagSet) {
		fs.StringVar(&from, "from", "", "a folder written by molar backup")
		fs.BoolVar(&dbOnly, "database-only", false, "restore the database only (the object store is restored by other means)")
		fs.BoolVar(&objectsOnly, "objects-only", false, "put the objects into the store again, for the database restored from this backup already (after a restore that stopped)")
		fs.BoolVar(&quiet, "quiet", false, "no progress bar")
	})
	if err != nil {
		return err
	}
	if fset.NArg() > 0 {
		return usageError{fmt.Errorf("unexpected argument %q", fset.Arg(0))}
	}
	if from == "" {
		return usageError{errors.New("usage: molar restore --from DIR [--database-only|--objects-only] [--quiet]")}
	}
	if dbOnly && objectsOnly {
		return usageError{errors.New("--database-only and --objects-only exclude each other")}
	}
	m, err := readManifest(from)
	if err != nil {
		return err
	}
	if !m.Objects && !dbOnly {
		if objectsOnly {
			return usageError{fmt.Errorf("%s holds no objects (taken with --database-only)", from)}
		}
		return usageError{fmt.Errorf("%s holds no objects (taken with --database-only): restore with --database-only and the objects by other means", from)}
	}
	if m.DumpSHA256 != "" && !objectsOnly {
		sum, err := fileSHA256(filepath.Join(from, backupDump))
		if err != nil {
			return fmt.Errorf("restore: %w", err)
		}
		if sum != m.DumpSHA256 {
			return fmt.Errorf("restore: %s in %s is damaged (its SHA-256 is not the one the backup recorded); nothing was restored", backupDump, from)
		}
	}
	log := newLogger(&Config{LogLevel: "warn", LogFormat: cfg.LogFormat}, os.Stderr)
	// An object store that cannot be reached (a wrong endpoint or key)
	// fails the restore before the database is restored: a restored
	// database refuses a second restore. (The filesystem store is opened
	// after the database, which creates the data directory.)
	var store storage.ObjectStore
	if !dbOnly && cfg.S3Endpoint != "" {
		if store, err = openObjectStore(ctx, cfg, log); err != nil {
			return err
		}
	}
	var db *database
	if objectsOnly {
		db, err = openDatabase(ctx, cfg, log, dbExisting)
	} else {
		db, err = openDatabase(ctx, cfg, log, dbRestore, func(ctx context.Context, db *database) error {
			if err := checkEmptyDatabase(ctx, db.ownerURL); err != nil {
				return err
			}
			// A new server has none of Molar's roles yet; the dump's objects
			// belong to molar_owner and grant to molar_app.
			if err := postgres.PrepareRoles(ctx, db.ownerURL); err != nil {
				return fmt.Errorf("restore: %w", err)
			}
			if err := pgTool(ctx, db, "pg_restore", "--exit-on-error", "--single-transaction", "--dbname="+db.ownerURL, filepath.Join(from, backupDump)); err != nil {
				return fmt.Errorf("restore: database: %w (nothing was restored)", err)
			}
			return restoreAuditChain(ctx, db.ownerURL, stdout)
		})
	}
	if err != nil {
		return err
	}
	defer db.close(ctx)
	if !objectsOnly {
		fmt.Fprintf(stdout, "database restored (backup of %s)\n", m.Created.Format(time.RFC3339))
	}
	if dbOnly {
		fmt.Fprintln(stdout, "objects not restored (--database-only): run `molar archive verify` once they are")
		return nil
	}
	again := fmt.Sprintf("the database is restored: `molar restore --from %s --objects-only` puts the objects back", from)
	if store == nil {
		if store, err = openObjectStore(ctx, cfg, log); err != nil {
			return fmt.Errorf("%w (%s)", err, again)
		}
	}
	bar := newBar(quiet, stderr, m.Bytes, "restoring objects")
	var n, size int64
	var mu sync.Mutex
	problems, err := copyObjects(ctx, m.Bytes, bar, func(fn func(index.ObjectRef) error) error {
		tenants, err := index.TenantIDs(ctx, db.pool)
		if err != nil {
			return fmt.Errorf("restore: %w", err)
		}
		for _, t := range tenants {
			err := index.EachObjectRef(backupPage, func(after int64, limit int) (page []index.ObjectRef, err error) {
				err = postgres.InTenant(ctx, db.pool, t, func(tx pgx.Tx) error {
					page, err = index.ObjectRefs(ctx, tx, after, limit)
					return err
				})
				return page, err
			}, fn)
			if err != nil {
				return err
			}
		}
		return nil
	}, func(ref index.ObjectRef) error {
		err := restoreObject(ctx, store, from, ref)
		if err == nil {
			mu.Lock()
			n, size = n+1, size+ref.Size
			mu.Unlock()
		}
		return err
	}, stdout)
	if bar != nil {
		_ = bar.Finish()
	}
	if err != nil {
		return fmt.Errorf("restore: %w (%s)", err, again)
	}
	fmt.Fprintf(stdout, "%d instance objects restored (%s, each checked against its SHA-256)\n", n, humanize.IBytes(uint64(size)))
	if problems > 0 {
		return fmt.Errorf("restore: %d object(s) missing or damaged in the backup (listed above); `molar archive verify` lists them again", problems)
	}
	return nil
}

// objectProblem is an object that could not be copied as acknowledged: a
// line of the report, not the end of the run.
type objectProblem struct {
	ref index.ObjectRef
	why string
}

func (p *objectProblem) Error() string {
	return fmt.Sprintf("instance row %d (tenant %d), object %s: %s", p.ref.InstanceID, p.ref.TenantID, p.ref.Key, p.why)
}

// copyObjects runs copy on every ref walk yields, backupParallel at a
// time; problems are printed and counted, any other error ends the run.
func copyObjects(ctx context.Context, total int64, bar *progressbar.ProgressBar, walk func(func(index.ObjectRef) error) error,
	copy func(index.ObjectRef) error, stdout io.Writer) (int, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		mu       sync.Mutex
		problems int
		firstErr error
		wg       sync.WaitGroup
	)
	work := make(chan index.ObjectRef)
	for range backupParallel {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ref := range work {
				err := copy(ref)
				mu.Lock()
				var p *objectProblem
				switch {
				case errors.As(err, &p):
					problems++
					if bar != nil {
						_ = bar.Clear()
					}
					fmt.Fprintln(stdout, p.Error())
				case err != nil:
					if firstErr == nil {
						firstErr = err
						cancel()
					}
				}
				if bar != nil {
					_ = bar.Add64(ref.Size)
				}
				mu.Unlock()
			}
		}()
	}
	walkErr := walk(func(ref index.ObjectRef) error {
		select {
		case work <- ref:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	})
	close(work)
	wg.Wait()
	if firstErr != nil {
		return problems, firstErr
	}
	return problems, walkErr
}

// backupObject copies one object into the backup, checking it.
func backupObject(ctx context.Context, store storage.ObjectStore, out string, ref index.ObjectRef) error {
	dst, err := objectPath(out, ref.Key)
	if err != nil {
		return &objectProblem{ref, err.Error()}
	}
	rc, _, err := store.Get(ctx, ref.Key, nil)
	if errors.Is(err, storage.ErrNotFound) {
		return &objectProblem{ref, "not in the object store"}
	}
	if err != nil {
		return fmt.Errorf("object store: %w", err)
	}
	defer rc.Close()
	if err := os.MkdirAll(filepath.Dir(dst), 0o700); err != nil {
		return err
	}
	tmp := dst + ".part"
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(f, h), rc)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("copy %s: %w", ref.Key, err)
	}
	if why := mismatch(ref, n, h.Sum(nil)); why != "" {
		_ = os.Remove(tmp)
		return &objectProblem{ref, why + " in the object store"}
	}
	return os.Rename(tmp, dst)
}

// restoreObject puts one object of the backup into the store, checking it.
func restoreObject(ctx context.Context, store storage.ObjectStore, from string, ref index.ObjectRef) error {
	src, err := objectPath(from, ref.Key)
	if err != nil {
		return &objectProblem{ref, err.Error()}
	}
	f, err := os.Open(src)
	if errors.Is(err, fs.ErrNotExist) {
		return &objectProblem{ref, "not in the backup"}
	}
	if err != nil {
		return err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	h := sha256.New()
	if _, err := store.Put(ctx, ref.Key, io.TeeReader(f, h), storage.PutOptions{Size: st.Size(), ContentType: "application/dicom"}); err != nil {
		return fmt.Errorf("object store: %w", err)
	}
	if why := mismatch(ref, st.Size(), h.Sum(nil)); why != "" {
		return &objectProblem{ref, why + " in the backup (restored as it is)"}
	}
	return nil
}

func mismatch(ref index.ObjectRef, n int64, sum []byte) string {
	switch {
	case n != ref.Size:
		return fmt.Sprintf("%d bytes instead of %d", n, ref.Size)
	case len(ref.SHA256) > 0 && !bytes.Equal(sum, ref.SHA256):
		return "SHA-256 differs"
	}
	return ""
}

// objectPath is where an object key lives in a backup folder; keys that
// would leave it are refused.
func objectPath(dir, key string) (string, error) {
	clean := filepath.Clean(filepath.FromSlash(key))
	if key == "" || filepath.IsAbs(clean) || clean == "." || strings.HasPrefix(clean, ".."+string(filepath.Separator)) || clean == ".." {
		return "", fmt.Errorf("object key %q cannot be a file name", key)
	}
	return filepath.Join(dir, backupObjects, clean), nil
}

// pgTool runs pg_dump or pg_restore of the cluster's version (the newest
// installed for an external database), with its last lines of errors in
// the error.
func pgTool(ctx context.Context, db *database, name string, args ...string) error {
	bin := ""
	if db.cluster != nil && db.cluster.Bin() != "" {
		bin = filepath.Join(db.cluster.Bin(), name)
	} else {
		dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin/" + name)
		sort.Slice(dirs, func(i, j int) bool { return pgMajor(dirs[i]) > pgMajor(dirs[j]) })
		if len(dirs) > 0 {
			bin = dirs[0]
		} else if p, err := exec.LookPath(name); err == nil {
			bin = p
		}
	}
	if bin == "" {
		return fmt.Errorf("%s not found: install the Debian package postgresql-client", name)
	}
	var errb bytes.Buffer
	var env []string
	for i, a := range args {
		if url, ok := strings.CutPrefix(a, "--dbname="); ok {
			// The password goes into the environment, which only this
			// user may read, not onto the command line, which every
			// user of the machine may (ps).
			var password string
			url, password = withoutPassword(url)
			args[i] = "--dbname=" + url
			if password != "" {
				env = append(os.Environ(), "PGPASSWORD="+password)
			}
		}
	}
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = env
	cmd.Stderr = &errb
	if err := cmd.Run(); err != nil {
		lines := strings.Split(strings.TrimSpace(errb.String()), "\n")
		if len(lines) > 3 {
			lines = lines[len(lines)-3:]
		}
		return fmt.Errorf("%s: %w: %s", name, err, strings.Join(lines, " "))
	}
	return nil
}

var dsnPassword = regexp.MustCompile(`(^|\s)password\s*=\s*('(?:[^'\\]|\\.)*'|\S*)`)

// withoutPassword takes the password out of a connection string (URL or
// key=value form) and returns it apart.
func withoutPassword(conn string) (string, string) {
	if strings.HasPrefix(conn, "postgres://") || strings.HasPrefix(conn, "postgresql://") {
		u, err := neturl.Parse(conn)
		if err != nil {
			return conn, ""
		}
		password := ""
		if u.User != nil {
			if p, ok := u.User.Password(); ok {
				password = p
				u.User = neturl.User(u.User.Username())
			}
		}
		q := u.Query()
		if p := q.Get("password"); p != "" {
			password = p
		}
		if q.Has("password") {
			q.Del("password")
			u.RawQuery = q.Encode()
		}
		return u.String(), password
	}
	m := dsnPassword.FindStringSubmatch(conn)
	if m == nil {
		return conn, ""
	}
	password := m[2]
	if strings.HasPrefix(password, "'") && len(password) >= 2 {
		password = strings.NewReplacer(`\'`, `'`, `\\`, `\`).Replace(password[1 : len(password)-1])
	}
	return strings.TrimSpace(dsnPassword.ReplaceAllString(conn, "$1")), password
}

func pgMajor(p string) int {
	n, _ := strconv.Atoi(filepath.Base(filepath.Dir(filepath.Dir(p))))
	return n
}

// checkEmptyDatabase refuses a database that holds anything but an empty
// migration record (which it removes, so that the dump's own takes its
// place).
func checkEmptyDatabase(ctx context.Context, url string) error {
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return fmt.Errorf("restore: connect: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	var schemas, tables int
	err = conn.QueryRow(ctx, `SELECT
		(SELECT count(*) FROM pg_namespace WHERE nspname NOT IN ('public', 'information_schema', 'molar_migrations') AND nspname NOT LIKE 'pg\_%'),
		(SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p', 'v', 'm', 'S'))`).Scan(&schemas, &tables)
	if err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	applied := 0
	var exists bool
	if err := conn.QueryRow(ctx, `SELECT to_regclass('molar_migrations.applied') IS NOT NULL`).Scan(&exists); err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	if exists {
		if err := conn.QueryRow(ctx, `SELECT count(*) FROM molar_migrations.applied`).Scan(&applied); err != nil {
			return fmt.Errorf("restore: %w", err)
		}
	}
	if schemas > 0 || tables > 0 || applied > 0 {
		return errors.New("restore: the database is not empty; restore into a new installation (a new data directory, or an empty database)")
	}
	if _, err := conn.Exec(ctx, `DROP SCHEMA IF EXISTS molar_migrations CASCADE`); err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	return nil
}

// restoreAuditChain seals what the backup held unsealed and moves the
// sealing horizon into this cluster's transaction ids (audit.AfterRestore):
// without it the sealer of a new cluster, whose transaction ids start low,
// seals nothing for a long time and `molar audit verify` reports every new
// event as inserted by hand.
func restoreAuditChain(ctx context.Context, url string, stdout io.Writer) error {
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return fmt.Errorf("restore: audit chain: connect: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	var sealed int
	var end audit.Anchor
	err = pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
		sealed, end, err = audit.AfterRestore(ctx, tx)
		return err
	})
	if err != nil {
		return fmt.Errorf("restore: the database was restored, its audit chain not made sealable (restore again into a new installation): %w", err)
	}
	fmt.Fprintf(stdout, "audit chain: %d event(s) the backup held unsealed now sealed; chain end %s\n", sealed, end)
	return nil
}

// inSnapshotTenant makes the snapshot transaction read as municipality t
// (index queries name the tenant from this setting).
func inSnapshotTenant(ctx context.Context, tx pgx.Tx, t int64) error {
	_, err := tx.Exec(ctx, `SELECT set_config('molar.tenant', $1, true)`, strconv.FormatInt(t, 10))
	if err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	return nil
}

func newBar(quiet bool, stderr io.Writer, total int64, what string) *progressbar.ProgressBar {
	if quiet {
		return nil
	}
	return progressbar.NewOptions64(total, progressbar.OptionSetWriter(stderr), progressbar.OptionSetDescription(what),
		progressbar.OptionShowBytes(true), progressbar.OptionSetPredictTime(true), progressbar.OptionClearOnFinish())
}

// newEmptyDir creates dir (private: it will hold health data) or accepts
// an existing empty one.
func newEmptyDir(dir string) error {
	entries, err := os.ReadDir(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return fmt.Errorf("backup: %w", err)
		}
		return nil
	case err != nil:
		return fmt.Errorf("backup: %w", err)
	case len(entries) > 0:
		return usageError{fmt.Errorf("%s is not empty: a backup goes into a new or empty folder", dir)}
	}
	return os.Chmod(dir, 0o700)
}

func writeManifest(dir string, m manifest) error {
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return err
	}
	tmp := filepath.Join(dir, backupManifest+".part")
	if err := os.WriteFile(tmp, append(b, '\n'), 0o600); err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	if err := syncFile(tmp); err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	if err := os.Rename(tmp, filepath.Join(dir, backupManifest)); err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	return syncFile(dir)
}

func readManifest(dir string) (manifest, error) {
	var m manifest
	b, err := os.ReadFile(filepath.Join(dir, backupManifest))
	if errors.Is(err, fs.ErrNotExist) {
		return m, fmt.Errorf("%s is not a complete Molar backup (no %s)", dir, backupManifest)
	}
	if err != nil {
		return m, err
	}
	if err := json.Unmarshal(b, &m); err != nil {
		return m, fmt.Errorf("%s: %w", backupManifest, err)
	}
	if m.Format != backupFormat {
		return m, fmt.Errorf("%s: backup format %d, this molar reads %d", backupManifest, m.Format, backupFormat)
	}
	return m, nil
}

// syncFile fsyncs a file or folder.
func syncFile(p string) error {
	f, err := os.Open(p)
	if err != nil {
		return err
	}
	defer f.Close()
	return f.Sync()
}

// syncTree fsyncs every folder under root (the files were synced as they
// were written).
func syncTree(root string) error {
	return filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) && p == root {
				return nil
			}
			return err
		}
		if d.IsDir() {
			return syncFile(p)
		}
		return nil
	})
}

// fileSHA256 is the hex SHA-256 of a file.
func fileSHA256(p string) (string, error) {
	f, err := os.Open(p)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
