package main

import (
	"github.com/jackc/pgx/v5"
	"github.com/molar-health/molar/dicom/thumb"
	"github.com/molar-health/molar/storage/jobs"

	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/schollz/progressbar/v3"

	"github.com/molar-health/molar/auth"
	"github.com/molar-health/molar/dicom/header"
	"github.com/molar-health/molar/dicom/index"
	"github.com/molar-health/molar/dicom/ingest"
)

// cmdImport is `molar import [--tenant CODE] PATH…`: DICOM files and
// folders (recursively) through the one ingest path, with a progress bar
// and one line per file that was not stored. Non-DICOM files are reported
// and skipped; the exit status is non-zero when any file failed.
func cmdImport(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	var tenantCode string
	var quiet bool
	only := map[string]bool{"duplicate-policy": true, "s3-endpoint": true, "s3-bucket": true, "s3-access-key": true,
		"s3-secret-key": true, "s3-tls": true, "s3-region": true}
	for k, v := range dbFlags {
		only[k] = v
	}
	cfg, fset, err := parseConfigWith("cmd", "import", args, getenv, stderr, only, func(fs flagSet) {
		fs.StringVar(&tenantCode, "tenant", "", "municipality code to import into (default: the only one)")
		fs.BoolVar(&quiet, "quiet", false, "no progress bar")
	})
	if err != nil {
		return err
	}
	paths := fset.Args()
	if len(paths) == 0 {
		return usageError{errors.New("usage: molar import [--tenant CODE] PATH… (files or folders, searched recursively)")}
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
	log := newLogger(&Config{LogLevel: "warn", LogFormat: cfg.LogFormat}, os.Stderr)
	db, err := openDatabase(ctx, cfg, log, true)
	if err != nil {
		return err
	}
	defer db.close(ctx)
	store, err := openObjectStore(ctx, cfg, log)
	if err != nil {
		return err
	}
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
	in := &ingest.Ingester{DB: db.pool, Store: store, Policy: policy, Logger: log}
	// The server's workers make the thumbnails; the import only enqueues.
	queue, err := jobs.New(db.pool, jobs.Options{Logger: log})
	if err != nil {
		return err
	}
	in.EnqueueTx = append(in.EnqueueTx, func(ctx context.Context, tx pgx.Tx, st ingest.Stored) error {
		_, err := thumb.EnqueueThumbnail(ctx, tx, queue, st.ObjectKey)
		return err
	})

	var bar *progressbar.ProgressBar
	if !quiet {
		bar = progressbar.NewOptions(len(files), progressbar.OptionSetWriter(stderr), progressbar.OptionSetDescription("importing"),
			progressbar.OptionShowCount(), progressbar.OptionSetPredictTime(true), progressbar.OptionClearOnFinish())
	}
	var stored, dup, failed int
	for _, f := range files {
		if ctx.Err() != nil {
			break
		}
		res, err := importFile(ctx, in, tenant, f)
		if bar != nil {
			_ = bar.Add(1)
		}
		switch {
		case err != nil:
			failed++
			if bar != nil {
				_ = bar.Clear()
			}
			fmt.Fprintf(stdout, "%s: not stored: %s\n", f, oneLine(err.Error()))
		case res.Outcome == index.OutcomeStored || res.Outcome == index.OutcomeOverwritten:
			stored++
		default:
			dup++
		}
	}
	if bar != nil {
		_ = bar.Finish()
	}
	fmt.Fprintf(stdout, "%d stored, %d already present, %d failed (of %d files)\n", stored, dup, failed, len(files))
	if failed > 0 {
		return fmt.Errorf("import: %d files failed", failed)
	}
	return ctx.Err()
}

// importFile ingests one file: a Part-10 file as it is, a bare data set
// (no preamble) with a generated file meta.
func importFile(ctx context.Context, in *ingest.Ingester, tenant int64, path string) (ingest.Result, error) {
	f, err := os.Open(path)
	if err != nil {
		return ingest.Result{}, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return ingest.Result{}, err
	}
	var pre [132]byte
	n, _ := io.ReadFull(f, pre[:])
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return ingest.Result{}, err
	}
	src := ingest.Source{TenantID: tenant, AE: "import", Size: fi.Size()}
	if n == 132 && string(pre[128:]) == "DICM" {
		src.Part10 = true
		return in.Ingest(ctx, src, f)
	}
	// A bare data set: learn its identity first (bounded), then stream it.
	h, err := header.Read(f, header.Options{})
	if err != nil || h.Dataset == nil || len(h.Dataset.Elements) == 0 {
		return ingest.Result{}, fmt.Errorf("not a DICOM file")
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return ingest.Result{}, err
	}
	if h.Meta != nil { // meta without preamble: store as it is
		src.Part10 = true
		return in.Ingest(ctx, src, f)
	}
	src.SOPClassUID, src.SOPInstanceUID, src.TransferSyntax = h.Dataset.UID(header.TagSOPClassUID), h.Dataset.UID(header.TagSOPInstanceUID), h.TransferSyntax
	if strings.TrimSpace(src.SOPInstanceUID) == "" {
		return ingest.Result{}, fmt.Errorf("no SOP Instance UID")
	}
	src.Size = -1
	return in.Ingest(ctx, src, f)
}
