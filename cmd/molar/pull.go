package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/schollz/progressbar/v3"

	"github.com/molar-health/molar/dicom/dimse"
	"github.com/molar-health/molar/dicom/index"
	"github.com/molar-health/molar/dicom/pull"
)

// cmdPull moves studies from another PACS into Molar (migration).
func cmdPull(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	var from, study, patientID, dates string
	var dryRun, quiet bool
	only := map[string]bool{"data-dir": true, "database-url": true, "database-app-url": true, "postgres-bin-dir": true,
		"log-level": true, "log-format": true, "ae-title": true, "dicom-addr": true,
		"dicom-tls-cert": true, "dicom-tls-key": true, "dicom-tls-ca": true}
	cfg, fs, err := parseConfigWith("cmd", "pull", args, getenv, stderr, only, func(fs flagSet) {
		fs.StringVar(&from, "from", "", "AE title of the PACS to pull from (registered with molar ae add)")
		fs.StringVar(&study, "study", "", "one Study Instance UID")
		fs.StringVar(&patientID, "patient-id", "", "the remote's Patient ID")
		fs.StringVar(&dates, "dates", "", "study date or range, e.g. 20200101-20201231")
		fs.BoolVar(&dryRun, "dry-run", false, "list what matches, move nothing")
		fs.BoolVar(&quiet, "quiet", false, "no progress bar")
	})
	if err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Errorf("unexpected argument %q", fs.Arg(0))}
	}
	if from == "" {
		return usageError{errors.New("--from AE is required")}
	}
	if study == "" && patientID == "" && dates == "" {
		return usageError{errors.New("say what to pull: --study, --patient-id or --dates")}
	}
	log := newLogger(&Config{LogLevel: "warn", LogFormat: cfg.LogFormat}, os.Stderr)
	db, err := openDatabase(ctx, cfg, log, dbExisting)
	if err != nil {
		return err
	}
	defer db.close(ctx)
	ae, err := index.GetAE(ctx, db.pool, from)
	if err != nil {
		return fmt.Errorf("remote AE %s: %w (register it with molar ae add)", from, err)
	}
	if !ae.Can(index.PermStore) {
		return fmt.Errorf("AE %s may not store to Molar: give it the store permission (molar ae add --replace --permissions store,…)", from)
	}
	clientTLS, err := dicomClientTLS(cfg)
	if err != nil {
		return err
	}
	remote := pull.Remote{Addr: ae.Addr(), AETitle: ae.Title, CallingAE: cfg.AETitle, TLS: ae.DialTLS(clientTLS)}
	studies, err := pull.Find(ctx, remote, pull.Query{StudyUID: study, PatientID: patientID, Dates: dates})
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(stdout, 2, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "STUDY\tDATE\tMODALITIES\tIMAGES\n")
	for _, s := range studies {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\n", s.UID, s.Date, s.Modalities, s.Instances)
	}
	tw.Flush()
	fmt.Fprintf(stdout, "%d studies match on %s\n", len(studies), from)
	if dryRun || len(studies) == 0 {
		return nil
	}
	// The images arrive at the running server's SCP: check it answers.
	ectx, cancel := context.WithTimeout(ctx, 10*time.Second)
	local := dimse.DialOptions{CallingAE: from, CalledAE: cfg.AETitle, Contexts: []dimse.ProposedContext{dimse.VerificationContext()}}
	if cfg.DICOMTLSCert != "" {
		// The listener speaks TLS: a liveness check of our own port, no
		// data sent, so its certificate (which we load ourselves) is not
		// checked against a host name the listen address may not have.
		local.TLS = clientTLS.Clone()
		local.TLS.InsecureSkipVerify = true
	}
	a, err := dimse.Dial(ectx, cfg.DICOMAddr, local)
	cancel()
	if err != nil {
		return fmt.Errorf("the images are sent to %s at %s, which does not answer: start molar serve first (%w)", cfg.AETitle, cfg.DICOMAddr, err)
	}
	_ = a.Release(ctx)
	var bar *progressbar.ProgressBar
	if !quiet {
		bar = progressbar.NewOptions(len(studies), progressbar.OptionSetWriter(stderr), progressbar.OptionSetDescription("pulling"),
			progressbar.OptionShowCount(), progressbar.OptionClearOnFinish())
	}
	var completed, failed int
	var problems []string
	pull.Move(ctx, remote, cfg.AETitle, studies, func(r pull.Result) {
		if bar != nil {
			_ = bar.Add(1)
		}
		completed += r.Completed
		failed += r.Failed
		if r.Err != nil {
			problems = append(problems, r.Study+": "+r.Err.Error())
		}
	})
	fmt.Fprintf(stdout, "pulled %d instances from %d studies; %d failed\n", completed, len(studies), failed)
	if len(problems) > 0 {
		return fmt.Errorf("%d studies had problems: %s", len(problems), strings.Join(problems, "; "))
	}
	return nil
}
