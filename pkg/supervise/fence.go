package supervise

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Fencing: a Patroni that dies leaves its PostgreSQL running. If that
// PostgreSQL is the primary, its leader key expires TTL after Patroni last
// renewed it, a replica is promoted, and two primaries accept writes. So
// when Patroni dies while the host's PostgreSQL runs as a primary, the
// supervisor arms a deadline before the key can expire: the last renewal is
// assumed LoopWait before the death (Patroni renews it once per loop), and
// the deadline keeps a margin for the shutdown itself:
//
//	deadline = death + (TTL - LoopWait) - margin,  margin = max(2 s, (TTL - LoopWait) / 4)
//
// At the deadline, unless Patroni is back and says it holds the leader key
// (GET /leader answers 200), or PostgreSQL has stopped or become a replica,
// the supervisor stops PostgreSQL: pg_ctl stop -m fast, then -m immediate
// when the fast shutdown has not ended within half the margin.

// margin is what a fence keeps between its deadline and the earliest expiry
// of the leader key.
func (f *Fence) margin() time.Duration {
	return max(2*time.Second, (f.TTL-f.LoopWait)/4)
}

// Deadline is when a fence armed by a death at died fires.
func (f *Fence) Deadline(died time.Time) time.Time {
	return died.Add(f.TTL - f.LoopWait - f.margin())
}

// Primary tells whether a postmaster runs in dataDir as a primary: its
// postmaster.pid names a live process and no standby.signal or
// recovery.signal is there.
func Primary(dataDir string) (pid int, ok bool) {
	b, err := os.ReadFile(filepath.Join(dataDir, "postmaster.pid"))
	if err != nil {
		return 0, false
	}
	line, _, _ := strings.Cut(string(b), "\n")
	pid, err = strconv.Atoi(strings.TrimSpace(line))
	if err != nil || !Inspect(pid, nil).Alive {
		return 0, false
	}
	for _, sig := range []string{"standby.signal", "recovery.signal"} {
		if _, err := os.Stat(filepath.Join(dataDir, sig)); err == nil {
			return pid, false
		}
	}
	return pid, true
}

func (s *supervisor) armFence(died time.Time) {
	f := s.spec.Fence
	if f == nil || !s.fenceAt.IsZero() {
		return // an earlier death's deadline is the earlier one: keep it
	}
	if _, ok := Primary(f.DataDir); !ok {
		return
	}
	s.fenceAt = f.Deadline(died)
	s.log.Printf("PostgreSQL in %s runs as a primary without its Patroni: it is stopped at %s unless Patroni is back holding the leader key by then",
		f.DataDir, s.fenceAt.Format(time.RFC3339Nano))
	s.fence.Reset(time.Until(s.fenceAt))
}

// fenceCheck runs at the deadline.
func (s *supervisor) fenceCheck() {
	if s.child > 0 && s.leaderHeld() {
		s.log.Printf("Patroni is back and holds the leader key: PostgreSQL keeps running")
		s.fenceAt = time.Time{}
		return
	}
	if _, ok := Primary(s.spec.Fence.DataDir); !ok {
		s.fenceAt = time.Time{}
		return
	}
	s.fenceNow("Patroni is not back holding the leader key")
}

// leaderHeld asks Patroni whether it holds the leader key.
func (s *supervisor) leaderHeld() bool {
	f := s.spec.Fence
	if f.LeaderURL == "" {
		return false
	}
	tr := &http.Transport{}
	if f.CAFile != "" {
		pem, err := os.ReadFile(f.CAFile)
		if err != nil {
			return false
		}
		pool := x509.NewCertPool()
		pool.AppendCertsFromPEM(pem)
		tr.TLSClientConfig = &tls.Config{RootCAs: pool}
	}
	defer tr.CloseIdleConnections()
	c := &http.Client{Transport: tr, Timeout: time.Second}
	resp, err := c.Get(f.LeaderURL)
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// fenceNow stops the primary: fast, then immediate.
func (s *supervisor) fenceNow(why string) {
	f := s.spec.Fence
	s.fenceAt = time.Time{}
	s.fence.Stop()
	pid, ok := Primary(f.DataDir)
	if !ok {
		return
	}
	s.log.Printf("%s: stopping PostgreSQL (PID %d) before its leader key can expire", why, pid)
	half := f.margin() / 2
	mode := "fast"
	if err := s.pgCtlStop("fast", half); err != nil {
		s.log.Printf("fast shutdown: %v; shutting down immediately", err)
		mode = "immediate"
		if err := s.pgCtlStop("immediate", half); err != nil {
			s.log.Printf("immediate shutdown: %v; killing PID %d", err, pid)
			_ = syscall.Kill(pid, syscall.SIGKILL)
			mode = "SIGKILL"
		}
	}
	s.st.Fenced = time.Now().UTC().Format(time.RFC3339) + ": PostgreSQL stopped (" + mode + "): " + why
	s.save()
}

func (s *supervisor) pgCtlStop(mode string, d time.Duration) error {
	secs := max(1, int(d/time.Second))
	ctx, cancel := context.WithTimeout(context.Background(), d+time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, s.spec.Fence.PgCtl, "stop", "-D", s.spec.Fence.DataDir, "-m", mode, "-w", "-t", strconv.Itoa(secs))
	cmd.Env = s.spec.Env
	cmd.Dir = "/"
	cmd.SysProcAttr = &syscall.SysProcAttr{}
	if c := s.spec.Cred; c != nil {
		cmd.SysProcAttr.Credential = &syscall.Credential{Uid: c.UID, Gid: c.GID, Groups: c.Groups}
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		return &pgCtlError{err: err, out: strings.TrimSpace(string(out))}
	}
	return nil
}

type pgCtlError struct {
	err error
	out string
}

func (e *pgCtlError) Error() string { return "pg_ctl: " + e.err.Error() + ": " + e.out }
