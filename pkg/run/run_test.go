package run

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/pgherd/pgherd/pkg/logging"
)

func TestExecCapturesOutputAndExitCode(t *testing.T) {
	res, err := Exec{}.Run(context.Background(), Cmd{Args: []string{"sh", "-c", "echo out; echo err >&2"}})
	if err != nil || res.Stdout != "out\n" || res.Stderr != "err\n" {
		t.Fatalf("got %+v, %v", res, err)
	}
	_, err = Exec{}.Run(context.Background(), Cmd{Args: []string{"sh", "-c", "echo line1 >&2; echo boom >&2; exit 3"}})
	var re *Error
	if !errors.As(err, &re) || re.ExitCode != 3 {
		t.Fatalf("want *Error with code 3, got %v", err)
	}
	if want := "sh exited with code 3: line1 | boom"; err.Error() != want {
		t.Errorf("error %q, want %q", err, want)
	}
}

func TestExecNeverShowsSecrets(t *testing.T) {
	var log bytes.Buffer
	ctx := logging.With(context.Background(), logging.New(&log, -4))
	_, err := Exec{}.Run(ctx, Cmd{
		Args:   []string{"sh", "-c", "echo password is s3cret >&2; exit 1", "s3cret"},
		Redact: []string{"s3cret"},
	})
	if err == nil || strings.Contains(err.Error(), "s3cret") || !strings.Contains(err.Error(), "********") {
		t.Errorf("error shows the secret or hides everything: %v", err)
	}
	if strings.Contains(log.String(), "s3cret") || !strings.Contains(log.String(), "DEBUG running sh -c") {
		t.Errorf("debug log shows the secret or nothing: %q", log.String())
	}
}

func TestExecMissingProgram(t *testing.T) {
	_, err := Exec{}.Run(context.Background(), Cmd{Args: []string{"/nonexistent/prog"}})
	if err == nil || !strings.Contains(err.Error(), "cannot run /nonexistent/prog") {
		t.Errorf("got %v", err)
	}
}
