package supervise

import (
	"errors"
	"fmt"
	"io"
	"strconv"
)

// Main is the pgherd-supervise command: `pgherd-supervise [--adopt PID]
// --spec FILE`. Its messages go to stderr, which the process manager points
// at the service's log.
func Main(args []string, stderr io.Writer) int {
	var specPath string
	adopt := 0
	for len(args) >= 2 {
		switch args[0] {
		case "--spec":
			specPath = args[1]
		case "--adopt":
			n, err := strconv.Atoi(args[1])
			if err != nil || n <= 0 {
				fmt.Fprintf(stderr, "pgherd-supervise: --adopt wants a PID, got %q\n", args[1])
				return 2
			}
			adopt = n
		default:
			args = args[:1]
			continue
		}
		args = args[2:]
	}
	if len(args) != 0 || specPath == "" {
		fmt.Fprintln(stderr, "usage: pgherd-supervise [--adopt PID] --spec FILE (started by pgherd's process service manager)")
		return 2
	}
	spec, err := ReadSpec(specPath)
	if err != nil {
		fmt.Fprintf(stderr, "pgherd-supervise: %v\n", err)
		return 1
	}
	if err := Run(spec, adopt, stderr); err != nil {
		if !errors.Is(err, ErrGaveUp) {
			fmt.Fprintf(stderr, "pgherd-supervise: %s: %v\n", spec.Name, err)
		}
		return 1
	}
	return 0
}
