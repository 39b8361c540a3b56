package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/molar-health/molar/auth"
	"github.com/molar-health/molar/auth/audit"
	"github.com/molar-health/molar/dicom/index"
	"github.com/molar-health/molar/storage"
	"github.com/molar-health/molar/storage/postgres"
)

// dbFlags are the settings admin commands take: where the database is.
var dbFlags = map[string]bool{"data-dir": true, "postgres-bin-dir": true, "database-url": true, "database-app-url": true, "log-level": true, "log-format": true}

// storeFlags are the settings of admin commands that also use the object
// store: dbFlags and the S3 ones, plus extra.
func storeFlags(extra ...string) map[string]bool {
	only := map[string]bool{"s3-endpoint": true, "s3-bucket": true, "s3-access-key": true, "s3-secret-key": true, "s3-tls": true, "s3-region": true}
	for k, v := range dbFlags {
		only[k] = v
	}
	for _, k := range extra {
		only[k] = true
	}
	return only
}

// openDBAndStore opens the database (migrated) and the object store for an
// admin command, logging warnings and worse only; the caller closes db.
func openDBAndStore(ctx context.Context, cfg *Config) (*database, storage.ObjectStore, *slog.Logger, error) {
	log := newLogger(&Config{LogLevel: "warn", LogFormat: cfg.LogFormat}, os.Stderr)
	db, err := openDatabase(ctx, cfg, log, dbExisting)
	if err != nil {
		return nil, nil, nil, err
	}
	store, err := openObjectStore(ctx, cfg, log)
	if err != nil {
		db.close(ctx)
		return nil, nil, nil, err
	}
	return db, store, log, nil
}

// adminDB parses the database settings plus the command's own flags
// (declared by addFlags) and opens the database, migrated.
func adminDB(ctx context.Context, cmd string, args []string, getenv func(string) string, stderr io.Writer, addFlags func(fs flagSet)) (*database, *Config, error) {
	cfg, fs, err := parseConfigWith("cmd", cmd, args, getenv, stderr, dbFlags, addFlags)
	if err != nil {
		return nil, nil, err
	}
	if fs.NArg() > 0 {
		return nil, nil, usageError{fmt.Errorf("unexpected argument %q", fs.Arg(0))}
	}
	log := newLogger(cfg, os.Stderr)
	if cfg.LogLevel == "info" {
		log = newLogger(&Config{LogLevel: "warn", LogFormat: cfg.LogFormat}, os.Stderr)
	}
	mode := dbExisting
	if cmd == "migrate" || cmd == "demo" {
		mode = dbCreate
	}
	db, err := openDatabase(ctx, cfg, log, mode)
	if err != nil {
		return nil, nil, err
	}
	return db, cfg, nil
}

func cmdMigrate(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	db, _, err := adminDB(ctx, "migrate", args, getenv, stderr, nil)
	if err != nil {
		return err
	}
	defer db.close(ctx)
	fmt.Fprintln(stdout, "database is up to date")
	return nil
}

// sub splits off the verb of a command with sub-commands (one of verbs).
func sub(args []string, usage string, verbs ...string) (string, []string, error) {
	if len(args) == 0 || !slices.Contains(verbs, args[0]) {
		return "", nil, usageError{errors.New(usage)}
	}
	return args[0], args[1:], nil
}

func cmdUser(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	const usage = "usage: molar user add|list|unlock|passwd [flags] (see molar user add --help)"
	verb, rest, err := sub(args, usage, "add", "list", "unlock", "passwd")
	if err != nil {
		return err
	}
	var username, role, passwordFile, name, tenantCode, tenantName string
	flags := func(fs flagSet) {
		fs.StringVar(&username, "username", "", "user name")
		if verb == "add" {
			fs.StringVar(&role, "role", "", "role: "+strings.Join(auth.Roles(), ", "))
			fs.StringVar(&name, "name", "", "display name")
			fs.StringVar(&tenantCode, "tenant", "", "municipality code (default: the only one)")
			fs.StringVar(&tenantName, "tenant-name", "", "create the municipality with this name when it does not exist")
		}
		if verb == "add" || verb == "passwd" {
			fs.StringVar(&passwordFile, "password-file", "", "file holding the password ('-' = standard input)")
		}
	}
	db, _, err := adminDB(ctx, "user "+verb, rest, getenv, stderr, flags)
	if err != nil {
		return err
	}
	defer db.close(ctx)
	readPassword := func() (string, error) {
		if passwordFile == "" {
			return "", usageError{errors.New("--password-file is required (a file, or - for standard input)")}
		}
		var b []byte
		var err error
		if passwordFile == "-" {
			b, err = io.ReadAll(io.LimitReader(os.Stdin, 4096))
		} else {
			b, err = os.ReadFile(passwordFile)
		}
		if err != nil {
			return "", fmt.Errorf("read password: %w", err)
		}
		return strings.TrimRight(string(b), "\r\n"), nil
	}
	switch verb {
	case "add":
		if username == "" || role == "" {
			return usageError{errors.New("--username and --role are required")}
		}
		pw, err := readPassword()
		if err != nil {
			return err
		}
		return postgres.InTx(ctx, db.pool, func(tx pgx.Tx) error {
			t, err := pickTenant(ctx, tx, tenantCode, tenantName)
			if err != nil {
				return err
			}
			if name == "" {
				name = username
			}
			u, err := auth.CreateUser(ctx, tx, auth.NewUser{TenantID: t.ID, Username: username, DisplayName: name, Role: role, Password: pw}, nil)
			if err != nil {
				return err
			}
			fmt.Fprintf(stdout, "created user %s (id %d, role %s) in %s\n", u.Username, u.ID, u.Role, t.Name)
			return nil
		})
	case "list":
		rows, err := db.pool.Query(ctx, `SELECT u.username, u.role, u.display_name, t.code, u.locked_at IS NOT NULL FROM auth.users u JOIN auth.tenant t ON t.id = u.tenant_id ORDER BY t.code, u.username`)
		if err != nil {
			return fmt.Errorf("list users: %w", err)
		}
		defer rows.Close()
		tw := tabwriter.NewWriter(stdout, 2, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "USERNAME\tROLE\tNAME\tMUNICIPALITY\tLOCKED")
		for rows.Next() {
			var u, r, n, t string
			var locked bool
			if err := rows.Scan(&u, &r, &n, &t, &locked); err != nil {
				return err
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%v\n", u, r, n, t, locked)
		}
		tw.Flush()
		return rows.Err()
	case "unlock":
		if username == "" {
			return usageError{errors.New("--username is required")}
		}
		u, err := auth.UserByUsername(ctx, db.pool, username)
		if err != nil {
			return fmt.Errorf("user %q: %w", username, err)
		}
		svc, err := auth.New(db.pool, auth.Config{})
		if err != nil {
			return err
		}
		// The command line acts as a system administrator of the account's municipality.
		admin := &auth.Principal{Username: "molar-cli", Role: auth.RoleSystemAdmin, TenantID: u.TenantID}
		if err := svc.Unlock(ctx, admin, u.ID); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "unlocked %s\n", username)
		return nil
	case "passwd":
		if username == "" {
			return usageError{errors.New("--username is required")}
		}
		pw, err := readPassword()
		if err != nil {
			return err
		}
		u, err := auth.UserByUsername(ctx, db.pool, username)
		if err != nil {
			return err
		}
		svc, err := auth.New(db.pool, auth.Config{})
		if err != nil {
			return err
		}
		if err := svc.SetPassword(ctx, u.ID, pw); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "password changed for %s\n", username)
		return nil
	}
	return nil
}

// pickTenant finds the municipality for a new account.
// existingTenant is pickTenant of an existing municipality in a
// transaction of its own.
func existingTenant(ctx context.Context, db *database, code string) (auth.Tenant, error) {
	var t auth.Tenant
	err := postgres.InTx(ctx, db.pool, func(tx pgx.Tx) error {
		var err error
		t, err = pickTenant(ctx, tx, code, "")
		return err
	})
	return t, err
}

func pickTenant(ctx context.Context, tx pgx.Tx, code, name string) (auth.Tenant, error) {
	if code != "" {
		t, err := auth.TenantByCode(ctx, tx, code)
		if errors.Is(err, auth.ErrNotFound) && name != "" {
			return auth.CreateTenant(ctx, tx, code, name)
		}
		if errors.Is(err, auth.ErrNotFound) {
			return t, fmt.Errorf("no municipality %q (add --tenant-name to create it)", code)
		}
		return t, err
	}
	rows, err := tx.Query(ctx, `SELECT id, code, name FROM auth.tenant ORDER BY id LIMIT 2`)
	if err != nil {
		return auth.Tenant{}, err
	}
	ts, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (auth.Tenant, error) {
		var t auth.Tenant
		return t, r.Scan(&t.ID, &t.Code, &t.Name)
	})
	if err != nil {
		return auth.Tenant{}, err
	}
	switch len(ts) {
	case 0:
		return auth.Tenant{}, errors.New("no municipality yet: pass --tenant CODE --tenant-name NAME (or run molar demo)")
	case 1:
		return ts[0], nil
	}
	return auth.Tenant{}, errors.New("several municipalities: pass --tenant CODE")
}

func cmdAE(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	const usage = "usage: molar ae add|list|remove [flags]"
	verb, rest, err := sub(args, usage, "add", "list", "remove")
	if err != nil {
		return err
	}
	var title, host, perms, desc, tenantCode string
	var port int
	var replace, useTLS, requireUser bool
	var parsed flagSet
	flags := func(fs flagSet) {
		parsed = fs
		if verb == "add" || verb == "remove" {
			fs.StringVar(&title, "title", "", "AE title")
		}
		if verb == "add" {
			fs.StringVar(&host, "host", "", "host name or address")
			fs.IntVar(&port, "port", 104, "port")
			fs.StringVar(&perms, "permissions", "store", "comma-separated: store,find,move,get (echo always)")
			fs.StringVar(&desc, "description", "", "free text, e.g. the device")
			fs.BoolVar(&replace, "replace", false, "update the AE if it exists (settings not given keep their values)")
			fs.BoolVar(&useTLS, "tls", false, "Molar's associations to the AE use DICOM TLS (MOLAR_DICOM_TLS_CA is trusted beside the system's roots)")
			fs.BoolVar(&requireUser, "require-user", false, "the AE's associations must sign in with a Molar account (DICOM user identity: username and passcode, or a JWT)")
			fs.StringVar(&tenantCode, "tenant", "", "municipality code the AE's images belong to (default: the only one)")
		}
	}
	db, _, err := adminDB(ctx, "ae "+verb, rest, getenv, stderr, flags)
	if err != nil {
		return err
	}
	defer db.close(ctx)
	switch verb {
	case "add":
		// --replace updates: what is not given keeps its value (moving a
		// device to a new address must not turn its TLS off or take its
		// permissions away).
		given := map[string]bool{}
		parsed.Visit(func(f *flag.Flag) { given[f.Name] = true })
		var tenant int64
		updating := false
		if replace && title != "" {
			old, err := index.GetAE(ctx, db.pool, title)
			switch {
			case err == nil:
				updating = true
				if !given["host"] {
					host = old.Host
				}
				if !given["port"] {
					port = old.Port
				}
				if !given["permissions"] {
					perms = strings.Join(old.Permissions, ",")
				}
				if !given["description"] {
					desc = old.Description
				}
				if !given["tls"] {
					useTLS = old.TLS
				}
				if !given["require-user"] {
					requireUser = old.RequireUser
				}
				tenant = old.TenantID
			case !errors.Is(err, index.ErrNotFound):
				return err
			}
		}
		if title == "" || host == "" {
			return usageError{errors.New("--title and --host are required")}
		}
		p, err := index.ParsePermissions(perms)
		if err != nil {
			return err
		}
		if tenantCode != "" {
			t, err := auth.TenantByCode(ctx, db.pool, tenantCode)
			if err != nil {
				return fmt.Errorf("municipality %q: %w", tenantCode, err)
			}
			tenant = t.ID
		}
		if err := index.AddAE(ctx, db.pool, index.AE{Title: title, Host: host, Port: port, Permissions: p, Description: desc, TLS: useTLS, RequireUser: requireUser, TenantID: tenant}, replace); err != nil {
			return err
		}
		via := ""
		if useTLS {
			via = ", over TLS"
		}
		if requireUser {
			via += ", signed in"
		}
		verbDone := "added"
		if updating {
			verbDone = "updated"
		}
		fmt.Fprintf(stdout, "%s AE %s at %s:%d (%s%s)\n", verbDone, title, host, port, strings.Join(p, ","), via)
	case "list":
		aes, err := index.ListAEs(ctx, db.pool)
		if err != nil {
			return err
		}
		tw := tabwriter.NewWriter(stdout, 2, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "TITLE\tADDRESS\tTLS\tSIGN-IN\tPERMISSIONS\tDESCRIPTION")
		for _, a := range aes {
			tlsCol := "-"
			if a.TLS {
				tlsCol = "yes"
			}
			userCol := "-"
			if a.RequireUser {
				userCol = "required"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", a.Title, a.Addr(), tlsCol, userCol, strings.Join(a.Permissions, ","), a.Description)
		}
		tw.Flush()
	case "remove":
		if title == "" {
			return usageError{errors.New("--title is required")}
		}
		if err := index.RemoveAE(ctx, db.pool, title); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "removed AE %s\n", title)
	}
	return nil
}

func cmdDemo(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	db, cfg, err := adminDB(ctx, "demo", args, getenv, stderr, nil)
	if err != nil {
		return err
	}
	defer db.close(ctx)
	// The demo needs the parts and modules built as the server builds them.
	cfg.Demo = false
	s, err := newServerFrom(ctx, cfg, db, newLogger(&Config{LogLevel: "warn", LogFormat: "text"}, os.Stderr))
	if err != nil {
		return err
	}
	res, err := seedDemo(ctx, db, s.parts, s.mods)
	if err != nil {
		return err
	}
	printLogins(stdout, res)
	return nil
}

func cmdAudit(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	_, rest, err := sub(args, "usage: molar audit verify [--anchor SEQ:HASH ...]", "verify")
	if err != nil {
		return err
	}
	var anchors stringList
	var grace time.Duration
	db, _, err := adminDB(ctx, "audit verify", rest, getenv, stderr, func(fs flagSet) {
		fs.Var(&anchors, "anchor", "a chain anchor SEQ:HASH logged by the sealer (repeatable)")
		fs.DurationVar(&grace, "grace", audit.DefaultGrace, "how long an unsealed event may wait before it counts as inserted")
	})
	if err != nil {
		return err
	}
	defer db.close(ctx)
	opts := audit.VerifyOptions{Grace: grace}
	for _, a := range anchors {
		an, err := audit.ParseAnchor(a)
		if err != nil {
			return usageError{err}
		}
		opts.Anchors = append(opts.Anchors, an)
	}
	// Seal what is committed first, so the report covers everything.
	if _, err := (&audit.Sealer{Pool: db.pool}).SealOnce(ctx); err != nil {
		return err
	}
	rep, err := audit.VerifyTo(ctx, db.pool, stdout, opts)
	if err != nil {
		return err
	}
	if !rep.OK {
		return fmt.Errorf("the audit log has %d problem(s)", len(rep.Problems)+rep.Omitted)
	}
	return nil
}

type stringList []string

func (s *stringList) String() string     { return strings.Join(*s, ",") }
func (s *stringList) Set(v string) error { *s = append(*s, v); return nil }
