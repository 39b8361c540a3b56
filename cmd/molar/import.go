package main

import (
	"github.com/jackc/pgx/v5"

	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path/filepath"

	"github.com/schollz/progressbar/v3"

	"github.com/molar-health/molar/auth"
	"github.com/molar-health/molar/dicom/index"
	"github.com/molar-health/molar/dicom/ingest"
	"github.com/molar-health/molar/dicom/media"
	"github.com/molar-health/molar/storage/postgres"
)

// cmdImport is `molar import [--tenant CODE] [--patient CPR] PATH…`: DICOM
// files, folders (recursively; a DICOMDIR is skipped, the files beside it
// are imported), ZIP archives (entry by entry) through the one ingest path,
// with a progress bar and one line per file that was not stored and why.
// With --patient, JPEG/PNG/TIFF pictures and STL/PLY models are wrapped in
// DICOM for that person of the register. Safe to run again: what is stored
// already is reported as present. The exit status is non-zero when any
// file failed.
func cmdImport(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	var tenantCode, cprArg string
	var quiet bool
	cfg, fset, err := parseConfigWith("cmd", "import", args, getenv, stderr, storeFlags("duplicate-policy"), func(fs flagSet) {
		fs.StringVar(&tenantCode, "tenant", "", "municipality code to import into (default: the only one)")
		fs.StringVar(&cprArg, "patient", "", "CPR number of the person that JPEG/PNG/TIFF/STL/PLY files belong to")
		fs.BoolVar(&quiet, "quiet", false, "no progress bar")
	})
	if err != nil {
		return err
	}
	paths := fset.Args()
	if len(paths) == 0 {
		return usageError{errors.New("usage: molar import [--tenant CODE] [--patient CPR] PATH… (files, folders searched recursively, ZIP archives)")}
	}
	var cpr auth.CPR
	if cprArg != "" {
		if cpr, err = auth.ParseCPR(cprArg); err != nil {
			return usageError{errors.New("--patient: not a valid CPR number")}
		}
	}
	var files []string
	for _, p := range paths {
		err := filepath.WalkDir(p, func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if d.Type().IsRegular() {
				files = append(files, path)
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("import: %w", err)
		}
	}
	db, store, log, err := openDBAndStore(ctx, cfg)
	if err != nil {
		return err
	}
	defer db.close(ctx)
	var tenant int64
	if tenantCode != "" {
		t, err := auth.TenantByCode(ctx, db.pool, tenantCode)
		if err != nil {
			return fmt.Errorf("import: municipality %q: %w", tenantCode, err)
		}
		tenant = t.ID
	} else if tenant, err = index.DefaultTenant(ctx, db.pool); err != nil {
		return fmt.Errorf("import: %w (use --tenant)", err)
	}
	policy, _ := index.ParseDuplicatePolicy(cfg.DuplicatePolicy)
	// Encapsulated STL models can be large: allow big single values.
	in := &ingest.Ingester{DB: db.pool, Store: store, Policy: policy, Logger: log, MaxValueLength: 1 << 30, MaxHeaderBytes: 2 << 30}
	// The ingest transaction queues the thumbnails; the server's dispatcher
	// and workers make them.
	im := &media.Importer{Ingest: in, TenantID: tenant, AE: "import"}
	if !cpr.IsZero() {
		var person auth.Person
		err := postgres.InTenant(ctx, db.pool, tenant, func(tx pgx.Tx) error {
			var err error
			person, err = auth.FindPersonByCPR(ctx, tx, cpr)
			return err
		})
		if err != nil {
			return fmt.Errorf("import: --patient: no such person in the municipality: %w", err)
		}
		pt := media.PatientOf(person)
		im.Patient, im.Scope = &pt, media.Scope(tenant, person.ID)
	}

	var bar *progressbar.ProgressBar
	if !quiet {
		bar = progressbar.NewOptions(len(files), progressbar.OptionSetWriter(stderr), progressbar.OptionSetDescription("importing"),
			progressbar.OptionShowCount(), progressbar.OptionSetPredictTime(true), progressbar.OptionClearOnFinish())
	}
	var stored, dup, failed, skipped, wrapped int
	report := func(fr media.FileResult) {
		line := ""
		switch fr.Outcome {
		case media.Stored:
			stored++
			if fr.Kind != media.KindUnknown {
				wrapped++
			}
		case media.Duplicate:
			dup++
			if fr.Result.Outcome == index.OutcomeKeptFirst {
				line = fmt.Sprintf("%s: already present: %s", fr.Name, fr.Reason)
			}
		case media.Skipped:
			skipped++
			line = fmt.Sprintf("%s: skipped: %s", fr.Name, fr.Reason)
		default:
			failed++
			line = fmt.Sprintf("%s: not stored: %s", fr.Name, oneLine(fr.Reason))
		}
		if line != "" {
			if bar != nil {
				_ = bar.Clear()
			}
			fmt.Fprintln(stdout, line)
		}
	}
	for _, f := range files {
		if ctx.Err() != nil {
			break
		}
		e, err := media.FileEntry(f)
		if err != nil {
			report(media.FileResult{Name: f, Outcome: media.Rejected, Reason: err.Error()})
		} else {
			im.Import(ctx, e, report)
		}
		if bar != nil {
			_ = bar.Add(1)
		}
	}
	if bar != nil {
		_ = bar.Finish()
	}
	fmt.Fprintf(stdout, "%d stored, %d already present, %d failed (of %d files)\n", stored, dup, failed, stored+dup+failed)
	if wrapped > 0 {
		fmt.Fprintf(stdout, "%d pictures or models wrapped in DICOM for the chosen patient\n", wrapped)
	}
	if skipped > 0 {
		fmt.Fprintf(stdout, "%d skipped (DICOMDIR media index files)\n", skipped)
	}
	if failed > 0 {
		return fmt.Errorf("import: %d files failed", failed)
	}
	return ctx.Err()
}
