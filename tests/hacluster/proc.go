// Package hacluster runs a two-host PostgreSQL cluster with a third vote,
// as the HA tests and the failover benchmark need it: on each data host a
// real Patroni 3.0.2 with its PostgreSQL 15 (and, with pgherd's DCS, that
// host's DCS member), plus a witness. Three DCS setups, same Patroni
// timings:
//
//   - DCSPgherd: pgherd's embedded DCS, a data member per host and a witness
//     member (`pgherd dcs serve`), Patroni on its etcd3 API;
//   - DCSRaft: Patroni's own Raft (pysyncobj) with patroni_raft_controller as
//     the witness, the reference twin: there too the killed host takes a
//     Raft member with it;
//   - DCSEtcd: one etcd 3.4 member that no failure touches.
//
// Every process is started by PID and killed by PID; Stop ends them all,
// also after a failure. Hosts are loopback addresses (127.0.1.x), or
// network namespaces made by the caller (see Netns).
package hacluster

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Proc is one process the cluster started.
type Proc struct {
	Name string
	Log  string
	cmd  *exec.Cmd
	done chan struct{}
}

// PID is the process ID.
func (p *Proc) PID() int { return p.cmd.Process.Pid }

// Alive reports whether the process still runs.
func (p *Proc) Alive() bool {
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// Kill sends SIGKILL and waits for the process to be gone.
func (p *Proc) Kill() {
	if p.Alive() {
		p.cmd.Process.Signal(syscall.SIGKILL)
		<-p.done
	}
}

// Term sends SIGTERM and waits up to d, then kills.
func (p *Proc) Term(d time.Duration) {
	if !p.Alive() {
		return
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(d):
		p.Kill()
	}
}

// runner starts processes as the system user, optionally inside a network
// namespace, with their output appended to a log file.
type runner struct {
	cred *syscall.Credential
	mu   sync.Mutex
	all  []*Proc
}

func (r *runner) start(name, netns, logFile, dir string, env []string, args ...string) (*Proc, error) {
	out, err := os.OpenFile(logFile, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	defer out.Close()
	attr := &syscall.SysProcAttr{Setsid: true, Pdeathsig: syscall.SIGKILL}
	if netns != "" {
		// ip netns exec and setpriv both exec, so the PID is the program's.
		pre := []string{"ip", "netns", "exec", netns}
		if r.cred != nil {
			pre = append(pre, "setpriv", "--reuid="+strconv.Itoa(int(r.cred.Uid)), "--regid="+strconv.Itoa(int(r.cred.Gid)), "--clear-groups")
		}
		args = append(pre, args...)
	} else {
		attr.Credential = r.cred
	}
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Env, cmd.Dir = env, dir
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = attr
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &Proc{Name: name, Log: logFile, cmd: cmd, done: make(chan struct{})}
	go func() { cmd.Wait(); close(p.done) }()
	r.mu.Lock()
	r.all = append(r.all, p)
	r.mu.Unlock()
	return p, nil
}

// stopAll ends every process still running: SIGTERM, then SIGKILL.
func (r *runner) stopAll() {
	r.mu.Lock()
	defer r.mu.Unlock()
	var wg sync.WaitGroup
	for _, p := range r.all {
		wg.Add(1)
		go func(p *Proc) { defer wg.Done(); p.Term(20 * time.Second) }(p)
	}
	wg.Wait()
}

// postmasterPID is the PID in dataDir/postmaster.pid if that process lives.
func postmasterPID(dataDir string) int {
	b, err := os.ReadFile(filepath.Join(dataDir, "postmaster.pid"))
	if err != nil {
		return 0
	}
	pid, err := strconv.Atoi(strings.TrimSpace(strings.SplitN(string(b), "\n", 2)[0]))
	if err != nil || pid <= 0 || syscall.Kill(pid, 0) != nil {
		return 0
	}
	return pid
}

// freePort returns a port free on host now (in the current namespace).
func freePort(host string) (int, error) {
	l, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// Poll calls f every interval until it returns nil, for at most d (or
// until ctx ends).
func Poll(ctx context.Context, d, interval time.Duration, f func() error) error {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	return poll(ctx, interval, f)
}

// poll calls f every interval until it returns nil or ctx ends.
func poll(ctx context.Context, interval time.Duration, f func() error) error {
	for {
		err := f()
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w (last: %v)", ctx.Err(), err)
		case <-time.After(interval):
		}
	}
}

// tail returns the last n lines of file.
func tail(file string, n int) string {
	b, _ := os.ReadFile(file)
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
