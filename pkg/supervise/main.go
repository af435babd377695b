package supervise

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
)

// Main is the pgherd-supervise command, and returns its exit code:
//
//	pgherd-supervise [--adopt PID] --spec FILE          supervise one daemon (the process manager)
//	pgherd-supervise fence --data-dir DIR --pg-ctl PATH  a Patroni unit's ExecStopPost= (systemd)
//
// Its messages go to stderr, which the process manager points at the
// service's supervise.log and systemd at the journal.
func Main(args []string, stderr io.Writer) int {
	if len(args) > 0 && args[0] == "fence" {
		return fenceMain(args[1:], stderr)
	}
	fs := flag.NewFlagSet("pgherd-supervise", flag.ContinueOnError)
	fs.SetOutput(stderr)
	specPath := fs.String("spec", "", "the spec the process manager wrote")
	adopt := fs.Int("adopt", 0, "PID of the daemon, already running, to supervise")
	if err := fs.Parse(args); err != nil || fs.NArg() != 0 || *specPath == "" || *adopt < 0 {
		fmt.Fprintln(stderr, "usage: pgherd-supervise [--adopt PID] --spec FILE (started by pgherd's process service manager)")
		return 2
	}
	spec, err := ReadSpec(*specPath)
	if err != nil {
		fmt.Fprintf(stderr, "pgherd-supervise: %v\n", err)
		return 1
	}
	if err := Run(spec, *adopt, stderr); err != nil {
		if !errors.Is(err, ErrGaveUp) {
			fmt.Fprintf(stderr, "pgherd-supervise: %s: %v\n", spec.Name, err)
		}
		return 1
	}
	return 0
}

// fenceMain is `pgherd-supervise fence --data-dir DIR --pg-ctl PATH`.
func fenceMain(args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("pgherd-supervise fence", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dataDir := fs.String("data-dir", "", "PostgreSQL's data directory")
	pgCtl := fs.String("pg-ctl", "", "the pg_ctl of its version")
	if err := fs.Parse(args); err != nil || fs.NArg() != 0 || *dataDir == "" || *pgCtl == "" {
		fmt.Fprintln(stderr, "usage: pgherd-supervise fence --data-dir DIR --pg-ctl PATH (the ExecStopPost= of a Patroni unit)")
		return 2
	}
	if err := FenceAfterFailure(*dataDir, *pgCtl, os.Getenv("SERVICE_RESULT"), stderr); err != nil {
		fmt.Fprintf(stderr, "pgherd-supervise fence: %v\n", err)
		return 1
	}
	return 0
}
