package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/molar-health/molar/auth"
	"github.com/molar-health/molar/auth/audit"
	"github.com/molar-health/molar/dicom/index"
	"github.com/molar-health/molar/dicom/media"
	"github.com/molar-health/molar/storage"
	"github.com/molar-health/molar/storage/postgres"
)

// cmdExport is `molar export (--study UID | --patient CPR) --out DIR|FILE.zip
// [--deidentify [--keep-dates] [--keep-device]]`: PS3.10 media (DICOM/…
// files and a DICOMDIR) in a new folder or ZIP file, optionally
// de-identified with the PS3.15 Basic Profile. Every exported study is
// audit-logged (action export, actor system:export) with its person.
func cmdExport(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	var tenantCode, studyUID, cprArg, out string
	var deid, keepDates, keepDevice bool
	cfg, fset, err := parseConfigWith("cmd", "export", args, getenv, stderr, storeFlags(), func(fs flagSet) {
		fs.StringVar(&tenantCode, "tenant", "", "municipality code (default: the only one)")
		fs.StringVar(&studyUID, "study", "", "Study Instance UID to export")
		fs.StringVar(&cprArg, "patient", "", "CPR number of the person whose studies to export")
		fs.StringVar(&out, "out", "", "a new folder, or a file ending in .zip")
		fs.BoolVar(&deid, "deidentify", false, "de-identify (PS3.15 Basic Application Level Confidentiality Profile)")
		fs.BoolVar(&keepDates, "keep-dates", false, "with --deidentify: keep dates and times (Retain Longitudinal Temporal Information)")
		fs.BoolVar(&keepDevice, "keep-device", false, "with --deidentify: keep device identity (Retain Device Identity)")
	})
	if err != nil {
		return err
	}
	const usage = "usage: molar export (--study UID | --patient CPR) --out DIR|FILE.zip [--deidentify [--keep-dates] [--keep-device]]"
	if len(fset.Args()) > 0 || out == "" || (studyUID == "") == (cprArg == "") {
		return usageError{errors.New(usage)}
	}
	if (keepDates || keepDevice) && !deid {
		return usageError{errors.New("--keep-dates and --keep-device go with --deidentify")}
	}
	var cpr auth.CPR
	if cprArg != "" {
		if cpr, err = auth.ParseCPR(cprArg); err != nil {
			return usageError{errors.New("--patient: not a valid CPR number")}
		}
	}
	db, store, _, err := openDBAndStore(ctx, cfg)
	if err != nil {
		return err
	}
	defer db.close(ctx)
	var tenant int64
	if tenantCode != "" {
		t, err := auth.TenantByCode(ctx, db.pool, tenantCode)
		if err != nil {
			return fmt.Errorf("export: municipality %q: %w", tenantCode, err)
		}
		tenant = t.ID
	} else if tenant, err = index.DefaultTenant(ctx, db.pool); err != nil {
		return fmt.Errorf("export: %w (use --tenant)", err)
	}
	ctx = audit.WithActor(ctx, audit.Actor{Username: "system:export", Role: "system", TenantID: tenant})
	var insts []index.Instance
	studies := 0
	err = postgres.InTenant(ctx, db.pool, tenant, func(tx pgx.Tx) error {
		var list []index.Study
		if studyUID != "" {
			st, err := index.GetStudy(ctx, tx, studyUID)
			if err != nil {
				return fmt.Errorf("study: %w", err)
			}
			list = []index.Study{st}
		} else {
			p, err := auth.FindPersonByCPR(ctx, tx, cpr)
			if err != nil {
				return fmt.Errorf("no such person in the municipality: %w", err)
			}
			if list, err = index.StudiesOfPerson(ctx, tx, p.ID); err != nil {
				return err
			}
		}
		for _, st := range list {
			in, err := index.InstancesOfStudy(ctx, tx, st.StudyInstanceUID)
			if err != nil {
				return err
			}
			insts = append(insts, in...)
			studies++
			if err := audit.Record(ctx, tx, exportEvent(st, len(in), deid, "")); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("export: %w", err)
	}
	if len(insts) == 0 {
		return errors.New("export: nothing to export")
	}
	var sink media.Sink
	var file *os.File
	if strings.HasSuffix(strings.ToLower(out), ".zip") {
		if file, err = os.OpenFile(out, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600); err != nil {
			return fmt.Errorf("export: %w", err)
		}
		defer file.Close()
		sink = media.ZipSink(file)
	} else {
		if ents, err := os.ReadDir(out); err == nil && len(ents) > 0 {
			return fmt.Errorf("export: %s is not empty", out)
		}
		sink = media.DirSink(out)
	}
	var d *media.Deidentifier
	if deid {
		d = media.NewDeidentifier(keepDates, keepDevice)
	}
	n, skipped, err := writeFileSet(ctx, store, insts, media.NewFileSet(sink, d, ""), func(in index.Instance, err error) {
		fmt.Fprintf(stdout, "instance %d: not exported: %s\n", in.ID, oneLine(err.Error()))
	})
	if err != nil {
		return fmt.Errorf("export: %w", err)
	}
	if file != nil {
		if err := file.Close(); err != nil {
			return fmt.Errorf("export: %w", err)
		}
	}
	fmt.Fprintf(stdout, "exported %d instances of %d studies to %s", n, studies, out)
	if skipped > 0 {
		fmt.Fprintf(stdout, " (%d left out)", skipped)
	}
	fmt.Fprintln(stdout)
	return nil
}

// exportEvent is the audit row of an exported study.
func exportEvent(st index.Study, n int, deid bool, ae string) audit.Event {
	detail := map[string]any{"instances": n, "deidentified": deid}
	if ae != "" {
		detail["destination_ae"] = ae
	}
	return audit.Event{Action: audit.ActionExport, PersonID: st.PersonID, Object: fmt.Sprintf("dicom.study/%d", st.ID), Detail: detail}
}

// writeFileSet writes the instances into the file-set and closes it. An
// instance that cannot be written as asked (burned-in annotation, a face,
// a PDF when de-identifying) is left out and reported through skip; store failures
// end the export.
func writeFileSet(ctx context.Context, store storage.ObjectStore, insts []index.Instance, fs *media.FileSet, skip func(index.Instance, error)) (int, int, error) {
	n, skipped := 0, 0
	for _, in := range insts {
		if err := ctx.Err(); err != nil {
			return n, skipped, err
		}
		rc, _, err := store.Get(ctx, in.ObjectKey, nil)
		if err != nil {
			return n, skipped, fmt.Errorf("instance %d: %w", in.ID, err)
		}
		_, err = fs.Add(rc)
		rc.Close()
		if errors.Is(err, media.ErrNotDeidentifiable) {
			skipped++
			skip(in, err)
			continue
		}
		if err != nil {
			return n, skipped, fmt.Errorf("instance %d: %w", in.ID, err)
		}
		n++
	}
	return n, skipped, fs.Close()
}
