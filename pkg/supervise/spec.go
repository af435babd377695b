// Package supervise is pgherd's supervisor: one small process per daemon
// (pgherd-supervise, a static binary of its own) that starts the daemon,
// restarts it with backoff when it dies, gives up after a crash loop, and,
// for a Patroni, fences the host's PostgreSQL before the leader key of a
// dead Patroni can expire. pkg/service's process manager starts it; see
// pkg/service/DESIGN.md for what it guarantees and why.
//
// It links nothing but the standard library and golang.org/x/sys: it runs
// beside every daemon, so its memory is paid once per daemon.
package supervise

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// Spec is everything a supervisor needs to run its daemon. The process
// manager writes it (0600: the environment may hold secrets) and passes its
// path; a supervisor reads it once, when it starts.
type Spec struct {
	Name       string   `json:"name"` // "patroni 15-pg1", for messages
	Exec       []string `json:"exec"`
	Env        []string `json:"env"` // the whole environment of the daemon
	Dir        string   `json:"dir"`
	Cred       *Cred    `json:"cred,omitempty"` // nil: run as the supervisor's own user
	StopSignal int      `json:"stop_signal"`
	// PIDFile receives the daemon's PID each time it starts; SupervisorPIDFile
	// the supervisor's own; StateFile its State.
	PIDFile           string `json:"pid_file"`
	SupervisorPIDFile string `json:"supervisor_pid_file"`
	StateFile         string `json:"state_file"`
	Policy            Policy `json:"policy"`
	Fence             *Fence `json:"fence,omitempty"`
}

// Cred is the account the daemon (and pg_ctl, when fencing) runs as.
type Cred struct {
	UID    uint32   `json:"uid"`
	GID    uint32   `json:"gid"`
	Groups []uint32 `json:"groups,omitempty"`
}

// Policy is the restart policy: the first restart comes Delay after a
// death, each next one twice as late up to MaxDelay; a daemon that dies
// before it ran StableAfter counts as a failed try, and after MaxTries
// failed tries in a row the supervisor gives up.
type Policy struct {
	Delay       time.Duration `json:"delay"`
	MaxDelay    time.Duration `json:"max_delay"`
	MaxTries    int           `json:"max_tries"`
	StableAfter time.Duration `json:"stable_after"`
}

// Fence says how to fence the PostgreSQL of a Patroni: see fence.go.
type Fence struct {
	DataDir string `json:"data_dir"`
	PgCtl   string `json:"pg_ctl"`
	// TTL and LoopWait are the cluster's Patroni timings; the leader key of
	// a Patroni that died at T is assumed renewed last at T - LoopWait.
	TTL      time.Duration `json:"ttl"`
	LoopWait time.Duration `json:"loop_wait"`
	// RestURL is Patroni's REST API, http://HOST:PORT: GET /leader answers
	// 200 only on the member holding the leader key, GET /config has the
	// cluster's current timings. Empty or https: never asked.
	RestURL string `json:"rest_url,omitempty"`
	// DCS are the etcd v3 JSON API's base URLs (http://HOST:PORT), where
	// LeaderKey (NAMESPACE/SCOPE/leader) holds Member when this Patroni
	// leads: the lease's remaining TTL then bounds the deadline too. Empty
	// or https: never asked.
	DCS       []string `json:"dcs,omitempty"`
	LeaderKey string   `json:"leader_key,omitempty"`
	Member    string   `json:"member,omitempty"`
}

// Check refuses a spec the supervisor could not run.
func (s *Spec) Check() error {
	switch {
	case len(s.Exec) == 0 || !filepath.IsAbs(s.Exec[0]):
		return fmt.Errorf("%s: the program must be an absolute path, got %q", s.Name, s.Exec)
	case s.PIDFile == "" || s.StateFile == "" || s.SupervisorPIDFile == "":
		return fmt.Errorf("%s: the spec names no pidfile or state file", s.Name)
	case s.Policy.MaxTries < 1 || s.Policy.Delay <= 0 || s.Policy.MaxDelay < s.Policy.Delay:
		return fmt.Errorf("%s: invalid restart policy %+v", s.Name, s.Policy)
	case s.Fence != nil && (s.Fence.PgCtl == "" || s.Fence.DataDir == "" || s.Fence.TTL <= s.Fence.LoopWait):
		return fmt.Errorf("%s: invalid fencing settings %+v", s.Name, *s.Fence)
	}
	return nil
}

// ReadSpec reads a spec written by WriteJSON.
func ReadSpec(path string) (*Spec, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var s Spec
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return &s, s.Check()
}

// States a supervisor reports.
const (
	Running    = "running"    // the daemon runs
	Restarting = "restarting" // the daemon died; the next start is due at State.Next
	Failed     = "failed"     // the daemon died MaxTries times in a row: given up
	Exited     = "exited"     // the daemon ended cleanly (status 0, SIGTERM...): not restarted
)

// State is what a supervisor last wrote of its daemon.
type State struct {
	State    string    `json:"state"`
	PID      int       `json:"pid,omitempty"`
	Restarts int       `json:"restarts"` // restarts since the supervisor started
	Tries    int       `json:"tries"`    // failed tries in a row
	LastExit string    `json:"last_exit,omitempty"`
	Next     time.Time `json:"next,omitempty"`
	Fenced   string    `json:"fenced,omitempty"` // what fencing did, when it did
}

// ReadState reads a state file; a missing one is the zero State.
func ReadState(path string) (State, error) {
	var st State
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return st, nil
	}
	if err != nil {
		return st, err
	}
	if err := json.Unmarshal(b, &st); err != nil {
		return st, fmt.Errorf("%s: %w", path, err)
	}
	return st, nil
}

// WriteJSON writes v to path atomically (temp file, fsync, rename): a
// reader sees the old file or the new one, and a full disk leaves the old
// one in place and no temp file behind.
func WriteJSON(path string, v any, mode os.FileMode) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return WriteFileAtomic(path, append(b, '\n'), mode)
}

// WriteFileAtomic replaces path with data: a reader sees the old file or
// the new one, never a part, and the file has its mode from the start.
func WriteFileAtomic(path string, data []byte, mode os.FileMode) (err error) {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	if err = f.Chmod(mode); err != nil {
		return err
	}
	if _, err = f.Write(data); err != nil {
		return err
	}
	if err = f.Sync(); err != nil {
		return err
	}
	if err = f.Close(); err != nil {
		return err
	}
	if err = os.Rename(f.Name(), path); err != nil {
		return err
	}
	if d, derr := os.Open(dir); derr == nil {
		_ = d.Sync()
		d.Close()
	}
	return nil
}

// WritePID writes pid to path atomically.
func WritePID(path string, pid int) error {
	return WriteFileAtomic(path, []byte(strconv.Itoa(pid)+"\n"), 0o644)
}

// ReadPID reads a pidfile: 0 when there is none.
func ReadPID(path string) (int, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 0 {
		return 0, fmt.Errorf("pidfile %s does not hold a PID: remove it if the program is not running", path)
	}
	return pid, nil
}
