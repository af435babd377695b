package dcs

import (
	"bufio"
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pgherd/pgherd/pkg/service"
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

// A member that would run as an account that cannot reach pgherd-dcs is
// refused before anything is written.
func TestSetupRefusesUnreachableDaemon(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: members run as another account only when pgherd is root")
	}
	dir := t.TempDir() // 0700, root's
	pgherd := filepath.Join(dir, "bin", "pgherd")
	if err := os.MkdirAll(filepath.Dir(pgherd), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "bin", DaemonName), nil, 0o755); err != nil {
		t.Fatal(err)
	}
	l := &Local{Dir: filepath.Join(dir, "dcs"), Exec: pgherd, User: &service.User{Name: "nobody", UID: 65534, GID: 65534}}
	_, err := l.Setup(context.Background(), Config{Name: "m1", ListenPeer: "127.0.0.1:1", ListenClient: "127.0.0.1:2"})
	if err == nil || !strings.Contains(err.Error(), "is not traversable by nobody") || !strings.Contains(err.Error(), "install pgherd where nobody can reach it") {
		t.Fatalf("Setup with an unreachable daemon: err = %v", err)
	}
	if _, err := os.Stat(l.Dir); !os.IsNotExist(err) {
		t.Fatalf("Setup left %s behind (%v)", l.Dir, err)
	}
}

// TestPooledConnectionClosedByMember: a connection the member closed while
// it sat in the pool (its idle timeout, a restart) is not used again, so
// the next call is not lost after sending.
func TestPooledConnectionClosedByMember(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	closed := make(chan struct{}, 8)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				// Answer one call, then close, as a member whose idle
				// timeout passes.
				r := bufio.NewReader(c)
				r.ReadByte()
				if _, _, err := ReadFrame(r, MaxRequestFrame); err == nil {
					WriteFrame(bufio.NewWriter(c), stOK, []byte("ok"))
				}
				c.Close()
				closed <- struct{}{}
			}()
		}
	}()
	pc := NewPeerClient(ln.Addr().String(), nil)
	defer pc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for i := range 3 {
		if out, err := pc.Call(ctx, RPCInfo, nil); err != nil || string(out) != "ok" {
			t.Fatalf("call %d: %q, %v", i, out, err)
		}
		<-closed
	}
}
