package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"

	"github.com/dustin/go-humanize"
	"github.com/schollz/progressbar/v3"

	"github.com/molar-health/molar/dicom/ingest"
)

// cmdArchive is `molar archive verify [--hash] [--parallel N] [--quiet]`:
// the storage verification of the image archive. Every instance row of
// every municipality is checked against the object store (present, the
// acknowledged size; with --hash the acknowledged SHA-256, reading every
// byte), with a progress bar; each problem is one line on standard output
// naming the row and the object (never the patient), and the exit status
// is non-zero when there is any. It works beside a running server.
func cmdArchive(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	_, rest, err := sub(args, "usage: molar archive verify [--hash] [--parallel N] [--quiet]", "verify")
	if err != nil {
		return err
	}
	var hash, quiet bool
	var parallel int
	cfg, fset, err := parseConfigWith("cmd", "archive verify", rest, getenv, stderr, storeFlags(), func(fs flagSet) {
		fs.BoolVar(&hash, "hash", false, "read every object and compare its SHA-256 with the index (slow: reads the whole archive)")
		fs.IntVar(&parallel, "parallel", 4, "objects checked at once")
		fs.BoolVar(&quiet, "quiet", false, "no progress bar")
	})
	if err != nil {
		return err
	}
	if fset.NArg() > 0 {
		return usageError{fmt.Errorf("unexpected argument %q", fset.Arg(0))}
	}
	if parallel < 1 || parallel > 256 {
		return usageError{errors.New("--parallel: between 1 and 256")}
	}
	db, store, _, err := openDBAndStore(ctx, cfg)
	if err != nil {
		return err
	}
	defer db.close(ctx)

	var bar *progressbar.ProgressBar
	opts := ingest.VerifyOptions{Hash: hash, Parallel: parallel}
	if !quiet {
		opts.Start = func(n, size int64) {
			if hash {
				bar = progressbar.NewOptions64(size, progressbar.OptionSetWriter(stderr), progressbar.OptionSetDescription("verifying"),
					progressbar.OptionShowBytes(true), progressbar.OptionSetPredictTime(true), progressbar.OptionClearOnFinish())
				return
			}
			bar = progressbar.NewOptions64(n, progressbar.OptionSetWriter(stderr), progressbar.OptionSetDescription("verifying"),
				progressbar.OptionShowCount(), progressbar.OptionSetPredictTime(true), progressbar.OptionClearOnFinish())
		}
		opts.Progress = func(size int64) {
			if hash {
				_ = bar.Add64(size)
			} else {
				_ = bar.Add(1)
			}
		}
	}
	opts.Problem = func(p ingest.Problem) {
		if bar != nil {
			_ = bar.Clear()
		}
		fmt.Fprintln(stdout, p.String())
	}
	rep, err := ingest.Verify(ctx, db.pool, store, opts)
	if bar != nil {
		_ = bar.Finish()
	}
	if err != nil {
		return fmt.Errorf("archive verify: %w (after %d instances)", err, rep.Instances)
	}
	what := "present with their size"
	if hash {
		what = "present, size and SHA-256 as acknowledged"
	}
	fmt.Fprintf(stdout, "%d instances checked (%s): %s\n", rep.Instances, humanize.IBytes(uint64(rep.Bytes)), what)
	if rep.Total() == 0 {
		fmt.Fprintln(stdout, "no problems")
		return nil
	}
	kinds := make([]string, 0, len(rep.Problems))
	for k := range rep.Problems {
		kinds = append(kinds, k)
	}
	sort.Strings(kinds)
	for _, k := range kinds {
		fmt.Fprintf(stdout, "%d %s\n", rep.Problems[k], k)
	}
	return fmt.Errorf("archive verify: %d instance(s) whose object is not as acknowledged", rep.Total())
}
