package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"

	"github.com/spf13/pflag"

	"github.com/pgherd/pgherd/pkg/dcs"
	"github.com/pgherd/pgherd/pkg/logging"
)

// Main is the pgherd-dcs command: it serves the member configured by args
// (--config FILE, --log-level, --quiet) until ctx is done, and returns the
// exit code: 0 after a clean stop, 1 when the member fails, 2 for bad
// arguments.
func Main(ctx context.Context, args []string, stderr io.Writer) int {
	fl := pflag.NewFlagSet(dcs.DaemonName, pflag.ContinueOnError)
	fl.SetOutput(stderr)
	fl.Usage = func() {
		fmt.Fprintf(stderr, "Usage: %s --config FILE [flags]\n\nRun a DCS member in the foreground.\n\nFlags:\n%s", dcs.DaemonName, fl.FlagUsages())
	}
	file := fl.String("config", "", "member configuration file (YAML)")
	levelName := fl.StringP("log-level", "L", "info", "log level: debug, info, warning or error")
	quiet := fl.BoolP("quiet", "q", false, "print warnings and errors only")
	check := fl.String("check-snapshot", "", "check that FILE is a complete snapshot to restore from, then exit")
	if err := fl.Parse(args); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			return 0
		}
		return 2
	}
	usage := func(err error) int {
		fmt.Fprintf(stderr, "Error: %s; see %s --help\n", err, dcs.DaemonName)
		return 2
	}
	if *check != "" {
		return checkSnapshotMain(*check, stderr)
	}
	if fl.NArg() > 0 {
		return usage(fmt.Errorf("unexpected argument %q", fl.Arg(0)))
	}
	if *file == "" {
		return usage(errors.New("--config is required"))
	}
	level, err := logging.ParseLevel(*levelName)
	if err != nil {
		return usage(err)
	}
	if *quiet && level < slog.LevelWarn {
		level = slog.LevelWarn
	}
	ctx = logging.With(ctx, logging.New(stderr, level))
	cfg, err := dcs.LoadConfig(*file)
	if err == nil {
		err = Serve(ctx, cfg)
	}
	if err != nil {
		fmt.Fprintf(stderr, "Error: %s\n", err)
		return 1
	}
	return 0
}
