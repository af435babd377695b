package dcs

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// An error crosses the peer port as what the caller tests for: the
// not-leader sentinel, a gRPC code with its message, or plain text.
func TestPeerErrorsRoundTrip(t *testing.T) {
	for _, in := range []error{nil, ErrNotLeader, &StatusError{Code: 14, Message: "etcdserver: no leader"}, errors.New("refusing to remove a")} {
		kind, p := EncodeError(in)
		out := decodeError(kind, p)
		var se *StatusError
		switch {
		case in == nil:
			if out != nil {
				t.Errorf("nil came back as %v", out)
			}
		case errors.As(in, &se):
			var got *StatusError
			if !errors.As(out, &got) || *got != *se {
				t.Errorf("%#v came back as %#v", se, out)
			}
		case errors.Is(in, ErrNotLeader):
			if !errors.Is(out, ErrNotLeader) {
				t.Errorf("ErrNotLeader came back as %v", out)
			}
		default:
			if out == nil || out.Error() != in.Error() {
				t.Errorf("%q came back as %v", in, out)
			}
		}
	}
}

func TestDaemonBesidePgherd(t *testing.T) {
	dir := t.TempDir()
	pgherd := filepath.Join(dir, "pgherd")
	_, err := Daemon(pgherd)
	want := filepath.Join(dir, DaemonName)
	if err == nil || !strings.Contains(err.Error(), want+" is missing") {
		t.Fatalf("without %s: err = %v, want it named", want, err)
	}
	if err := os.WriteFile(want, nil, 0o755); err != nil {
		t.Fatal(err)
	}
	if got, err := Daemon(pgherd); err != nil || got != want {
		t.Fatalf("Daemon = %q, %v; want %q", got, err, want)
	}
}
