package supervise

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"net"
	"net/url"
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
// postmaster.pid names a live process of the data directory's owner and no
// standby.signal or recovery.signal is there. The owner check matters: the
// supervisor may run as root, and the account that owns the data
// directory writes postmaster.pid; a PID of anyone else's is never taken
// for the server (and never signalled).
func Primary(dataDir string) (pid int, ok bool) {
	b, err := os.ReadFile(filepath.Join(dataDir, "postmaster.pid"))
	if err != nil {
		return 0, false
	}
	line, _, _ := strings.Cut(string(b), "\n")
	pid, err = strconv.Atoi(strings.TrimSpace(line))
	if err != nil || pid <= 0 || !Inspect(pid, nil).Alive || !sameOwner(dataDir, pid) {
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
	switch at, how := s.leaseDeadline(); how {
	case leaseLost:
		s.fenceNow("the leader key is gone or held by another member")
		return
	case leaseFound:
		s.fenceAt = minTime(s.fenceAt, at)
	}
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

// leaderHeld asks Patroni whether it holds the leader key: GET /leader
// answers 200 only on the member that does.
func (s *supervisor) leaderHeld() bool {
	code, _ := restGet(s.spec.Fence.RestURL, "/leader")
	return code == 200
}

// refreshTimings reads the cluster's current ttl and loop_wait from
// Patroni's GET /config, so that the deadline follows a profile changed
// after the supervisor started.
func (s *supervisor) refreshTimings() {
	code, body := restGet(s.spec.Fence.RestURL, "/config")
	if code != 200 {
		return
	}
	var c struct {
		TTL      float64 `json:"ttl"`
		LoopWait float64 `json:"loop_wait"`
	}
	if json.Unmarshal(body, &c) != nil || c.TTL <= c.LoopWait || c.LoopWait <= 0 {
		return
	}
	ttl, loop := time.Duration(c.TTL*float64(time.Second)), time.Duration(c.LoopWait*float64(time.Second))
	if f := s.spec.Fence; f.TTL != ttl || f.LoopWait != loop {
		s.log.Printf("the cluster's timings are now ttl %s, loop_wait %s", ttl, loop)
		f.TTL, f.LoopWait = ttl, loop
	}
}

// What the DCS said of the leader key.
const (
	leaseUnknown = iota // no DCS to ask, or no answer
	leaseFound          // ours, expiring at the time returned
	leaseLost           // gone, or another member's
)

// leaseDeadline asks the DCS (etcd v3 JSON API, over http) for the leader
// key and its lease's remaining TTL (LeaseTimeToLive): the deadline is
// then that expiry less the margin, with no assumption on when Patroni
// last renewed it. The TTL is in whole seconds, rounded down by etcd.
func (s *supervisor) leaseDeadline() (time.Time, int) {
	f := s.spec.Fence
	for _, base := range f.DCS {
		now := time.Now()
		code, body := restDo("POST", base, "/v3/kv/range", fmt.Sprintf(`{"key":%q}`, base64.StdEncoding.EncodeToString([]byte(f.LeaderKey))))
		if code != 200 {
			continue
		}
		var rr struct {
			Kvs []struct {
				Value []byte `json:"value"`
				Lease int64  `json:"lease,string"`
			} `json:"kvs"`
		}
		if json.Unmarshal(body, &rr) != nil {
			continue
		}
		if len(rr.Kvs) == 0 || string(rr.Kvs[0].Value) != f.Member {
			return time.Time{}, leaseLost
		}
		code, body = restDo("POST", base, "/v3/lease/timetolive", fmt.Sprintf(`{"ID":"%d"}`, rr.Kvs[0].Lease))
		var tr struct {
			TTL int64 `json:"TTL,string"`
		}
		if code != 200 || json.Unmarshal(body, &tr) != nil {
			continue
		}
		if tr.TTL < 0 {
			return time.Time{}, leaseLost
		}
		at := now.Add(time.Duration(tr.TTL)*time.Second - f.margin())
		s.log.Printf("the DCS says the leader key expires in %ds", tr.TTL)
		return at, leaseFound
	}
	return time.Time{}, leaseUnknown
}

func minTime(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

// restGet is a bare HTTP/1.0 GET of Patroni's REST API, with a 1 s
// deadline: the supervisor runs beside every daemon, and the
// initialisation of net/http (or of crypto/tls) alone would cost it 2 to
// 3 MB of memory. So an https REST API is never asked (code 0), and its
// Patroni is taken for not back: fenced at the deadline.
func restGet(base, path string) (code int, body []byte) { return restDo("GET", base, path, "") }

// restDo is restGet with any method and a JSON body.
func restDo(method, base, path, reqBody string) (code int, body []byte) {
	u, err := url.Parse(base)
	if err != nil || u.Scheme != "http" || u.Host == "" {
		return 0, nil
	}
	conn, err := net.DialTimeout("tcp", u.Host, time.Second)
	if err != nil {
		return 0, nil
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(time.Second))
	req := fmt.Sprintf("%s %s HTTP/1.0\r\nHost: %s\r\n", method, path, u.Host)
	if reqBody != "" {
		req += fmt.Sprintf("Content-Type: application/json\r\nContent-Length: %d\r\n", len(reqBody))
	}
	if _, err := io.WriteString(conn, req+"\r\n"+reqBody); err != nil {
		return 0, nil
	}
	resp, err := io.ReadAll(io.LimitReader(conn, 1<<20))
	if err != nil {
		return 0, nil
	}
	head, body, _ := bytes.Cut(resp, []byte("\r\n\r\n"))
	line, _, _ := bytes.Cut(head, []byte("\r\n"))
	f := strings.Fields(string(line))
	if len(f) < 2 || !strings.HasPrefix(f[0], "HTTP/") {
		return 0, nil
	}
	code, _ = strconv.Atoi(f[1])
	return code, body
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
	mode := stopPrimary(f, s.spec.Cred, s.spec.Env, f.margin()/2, s.log)
	s.st.Fenced = time.Now().UTC().Format(time.RFC3339) + ": PostgreSQL stopped (" + mode + "): " + why
	s.save()
}

// stopPrimary stops the postmaster of f.DataDir: pg_ctl stop -m fast,
// then -m immediate when that has not ended within d, then SIGKILL. It
// returns the mode that stopped it.
func stopPrimary(f *Fence, cred *Cred, env []string, d time.Duration, log *log.Logger) string {
	pid, _ := Primary(f.DataDir)
	for _, mode := range []string{"fast", "immediate"} {
		err := pgCtlStop(f, cred, env, mode, d)
		if err == nil {
			return mode
		}
		log.Printf("%s shutdown: %v", mode, err)
	}
	log.Printf("killing PID %d", pid)
	_ = syscall.Kill(pid, syscall.SIGKILL)
	return "SIGKILL"
}

func pgCtlStop(f *Fence, cred *Cred, env []string, mode string, d time.Duration) error {
	secs := max(1, int(d/time.Second))
	ctx, cancel := context.WithTimeout(context.Background(), d+time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, f.PgCtl, "stop", "-D", f.DataDir, "-m", mode, "-w", "-t", strconv.Itoa(secs))
	cmd.Env = env
	cmd.Dir = "/"
	cmd.SysProcAttr = &syscall.SysProcAttr{}
	if cred != nil {
		cmd.SysProcAttr.Credential = &syscall.Credential{Uid: cred.UID, Gid: cred.GID, Groups: cred.Groups}
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("pg_ctl: %w: %s", err, strings.TrimSpace(string(out)))
	}
	return nil
}

// FenceAfterFailure is systemd's fencing, run by the Patroni unit's
// ExecStopPost= (as the unit's user) after Patroni ended: when it failed
// (SERVICE_RESULT is not "success") and PostgreSQL in dataDir still runs
// as a primary, it is stopped at once, since the unit restarts Patroni
// only after this returns. A clean stop (systemctl stop, where Patroni
// stopped PostgreSQL itself, or left it running on purpose in a paused
// cluster) is left alone.
func FenceAfterFailure(dataDir, pgCtl, result string, logw io.Writer) error {
	lg := log.New(logw, "pgherd-supervise fence: ", 0)
	if result == "success" {
		return nil
	}
	pid, ok := Primary(dataDir)
	if !ok {
		return nil
	}
	lg.Printf("Patroni ended with result %q while PostgreSQL (PID %d) runs as a primary: stopping it before its leader key can expire", result, pid)
	mode := stopPrimary(&Fence{DataDir: dataDir, PgCtl: pgCtl}, nil, os.Environ(), 5*time.Second, lg)
	lg.Printf("PostgreSQL stopped (%s)", mode)
	if _, still := Primary(dataDir); still {
		return fmt.Errorf("PostgreSQL in %s still runs", dataDir)
	}
	return nil
}

// sameOwner tells whether process pid runs as the owner of dir.
func sameOwner(dir string, pid int) bool {
	var d, p syscall.Stat_t
	if syscall.Lstat(dir, &d) != nil || syscall.Stat("/proc/"+strconv.Itoa(pid), &p) != nil {
		return false
	}
	return d.Uid == p.Uid
}
