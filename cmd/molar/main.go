// Command molar is Molar's single binary: the server and its admin commands.
// This package only parses arguments and wires packages together.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
)

const topUsage = `Molar: dental imaging, dental journal and municipal health services.

Usage: molar <command> [flags]

Commands:
  serve     run the server (HTTP, DICOM, background jobs)
  migrate   apply database migrations and exit
  import    import DICOM files, folders, DICOMDIR media, ZIPs (and pictures for a patient)
  user      manage local accounts (add, list, unlock, passwd)
  unit      organisational units and the staff who work in them (add, list, member)
  register  citizens, custody and care relations from a CSV extract (import), end custody (end-custody)
  ae        manage known DICOM application entities (add, list, remove)
  export    write a study or patient to a folder or ZIP with a DICOMDIR
  pull      pull studies from another PACS (C-FIND, C-MOVE) into Molar
  demo      seed the demo municipality into an empty database
  audit     verify the audit log's hash chain (audit verify)
  archive   check every stored image against the index (archive verify [--hash])
  backup    copy the database and every image into a folder (backup --out DIR)
  restore   restore a backup into a new installation (restore --from DIR)
  version   print the version

Run 'molar <command> --help' for the command's flags.
`

var version = "dev"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	// The first Ctrl-C (SIGTERM) shuts down gracefully; once it is under
	// way the signals' default action is back, so a second one ends molar
	// at once (its PostgreSQL gets its parent-death signal and stops).
	go func() {
		<-ctx.Done()
		stop()
	}()
	code := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run executes one command and returns the exit code. Errors are printed as
// one clear line, never a stack trace.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, topUsage)
		return 2
	}
	var err error
	switch args[0] {
	case "serve":
		err = cmdServe(ctx, args[1:], getenv, stdout, stderr)
	case "migrate":
		err = cmdMigrate(ctx, args[1:], getenv, stdout, stderr)
	case "user":
		err = cmdUser(ctx, args[1:], getenv, stdout, stderr)
	case "unit":
		err = cmdUnit(ctx, args[1:], getenv, stdout, stderr)
	case "register":
		err = cmdRegister(ctx, args[1:], getenv, stdout, stderr)
	case "ae":
		err = cmdAE(ctx, args[1:], getenv, stdout, stderr)
	case "import":
		err = cmdImport(ctx, args[1:], getenv, stdout, stderr)
	case "export":
		err = cmdExport(ctx, args[1:], getenv, stdout, stderr)
	case "pull":
		err = cmdPull(ctx, args[1:], getenv, stdout, stderr)
	case "demo":
		err = cmdDemo(ctx, args[1:], getenv, stdout, stderr)
	case "audit":
		err = cmdAudit(ctx, args[1:], getenv, stdout, stderr)
	case "archive":
		err = cmdArchive(ctx, args[1:], getenv, stdout, stderr)
	case "backup":
		err = cmdBackup(ctx, args[1:], getenv, stdout, stderr)
	case "restore":
		err = cmdRestore(ctx, args[1:], getenv, stdout, stderr)
	case "codec":
		err = cmdCodec(ctx, args[1:], getenv, stdout, stderr)
	case "version", "--version":
		fmt.Fprintln(stdout, "molar", version)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, topUsage)
	default:
		fmt.Fprintf(stderr, "molar: unknown command %q\n\n%s", args[0], topUsage)
		return 2
	}
	if err == nil {
		return 0
	}
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	msg := oneLine(err.Error())
	var ue usageError
	if errors.As(err, &ue) {
		fmt.Fprintf(stderr, "molar %s: %s\n", args[0], msg)
		return 2
	}
	fmt.Fprintf(stderr, "molar %s: %s\n", args[0], msg)
	return 1
}

// oneLine folds a multi-line error (pgx lists every address it tried) into
// one line, dropping repeated parts.
func oneLine(s string) string {
	var parts []string
	seen := map[string]bool{}
	for _, l := range strings.Split(s, "\n") {
		l = strings.TrimSpace(l)
		if l == "" || seen[l] {
			continue
		}
		seen[l] = true
		parts = append(parts, l)
	}
	return strings.Join(parts, " ")
}

// usageError marks errors in the command line itself (exit code 2).
type usageError struct{ error }
