// Package run is pgherd's one seam for running external programs (initdb,
// pg_ctl, patroni, systemctl...). Every command is logged at debug level, its
// standard error is captured into the returned error, and it may run as
// another system user when pgherd runs as root.
package run

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"strings"
	"syscall"

	"github.com/pgherd/pgherd/pkg/logging"
)

// Cmd describes one program to run.
type Cmd struct {
	Args   []string  // program and its arguments; Args[0] is looked up in PATH when not absolute
	Env    []string  // full environment; nil means the current one
	Dir    string    // working directory; empty means the current one
	Stdin  io.Reader // optional
	Stdout io.Writer // optional: where standard output goes in addition to the result
	Stderr io.Writer // optional: where standard error goes in addition to the error
	// Redact lists substrings (passwords) that must never reach a log line or an error.
	Redact []string
}

// Result is what a finished program printed.
type Result struct {
	Stdout string
	Stderr string
}

// Runner runs programs. Tests may swap it for a double.
type Runner interface {
	Run(ctx context.Context, c Cmd) (Result, error)
}

// Exec runs programs for real, as the user Cred names when it is set.
type Exec struct {
	Cred *syscall.Credential
}

// Error is returned when a program ran and failed; it carries its exit code
// and the last lines of its standard error.
type Error struct {
	Args     []string
	ExitCode int
	Stderr   string
	redact   []string
}

func (e *Error) Error() string {
	msg := fmt.Sprintf("%s exited with code %d", e.Args[0], e.ExitCode)
	if s := strings.TrimSpace(e.Stderr); s != "" {
		msg += ": " + lastLines(s, 5)
	}
	return redact(msg, e.redact)
}

// Run implements Runner.
func (x Exec) Run(ctx context.Context, c Cmd) (Result, error) {
	if len(c.Args) == 0 {
		return Result{}, errors.New("run: empty command")
	}
	logging.From(ctx).Debug(redact("running "+strings.Join(c.Args, " "), c.Redact))
	cmd := exec.CommandContext(ctx, c.Args[0], c.Args[1:]...)
	cmd.Env = c.Env
	cmd.Dir = c.Dir
	cmd.Stdin = c.Stdin
	var out, errb bytes.Buffer
	cmd.Stdout = tee(&out, c.Stdout)
	cmd.Stderr = tee(&errb, c.Stderr)
	if x.Cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: x.Cred}
	}
	err := cmd.Run()
	res := Result{Stdout: out.String(), Stderr: errb.String()}
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return res, &Error{Args: c.Args, ExitCode: ee.ExitCode(), Stderr: res.Stderr, redact: c.Redact}
		}
		return res, fmt.Errorf("cannot run %s: %w", c.Args[0], err)
	}
	return res, nil
}

func tee(buf *bytes.Buffer, w io.Writer) io.Writer {
	if w == nil {
		return buf
	}
	return io.MultiWriter(buf, w)
}

func lastLines(s string, n int) string {
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, " | ")
}

func redact(s string, secrets []string) string {
	for _, p := range secrets {
		if p != "" {
			s = strings.ReplaceAll(s, p, "********")
		}
	}
	return s
}
