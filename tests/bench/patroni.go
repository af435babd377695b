package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"github.com/pgherd/pgherd/pkg/patroni"
)

func init() {
	benches = append(benches,
		bench{name: "patroni list vs patronictl list", goal: "≤ 0.10", run: benchPatroniList},
		bench{name: "2-member Patroni bootstrap vs patroni by hand", goal: "≤ 1.10", run: benchPatroniBootstrap},
	)
}

// patroniSite is a scratch site with its own etcd for Patroni benchmarks.
type patroniSite struct {
	dir  string
	env  []string
	etcd *exec.Cmd
	dcs  string // HOST:PORT of etcd's client URL
}

func freeTCPPort(host string) (int, error) {
	l, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// patroniSite starts an etcd on free 127.0.0.1 ports and writes a site file
// whose Patroni section uses it, with ttl 20 / loop_wait 2 / retry_timeout 5.
func (h *harness) patroniSite(dir string, pgPort int) (*patroniSite, error) {
	env, err := h.siteEnv(dir, pgPort)
	if err != nil {
		return nil, err
	}
	var ports [3]int
	for i := range ports {
		if ports[i], err = freeTCPPort("127.0.0.1"); err != nil {
			return nil, err
		}
	}
	curl, purl := fmt.Sprintf("http://127.0.0.1:%d", ports[0]), fmt.Sprintf("http://127.0.0.1:%d", ports[1])
	log, err := os.Create(filepath.Join(dir, "etcd.log"))
	if err != nil {
		return nil, err
	}
	defer log.Close()
	etcd := exec.Command("etcd", "--name", "e1", "--data-dir", filepath.Join(dir, "etcd"),
		"--listen-client-urls", curl, "--advertise-client-urls", curl,
		"--listen-peer-urls", purl, "--initial-advertise-peer-urls", purl, "--initial-cluster", "e1="+purl)
	etcd.Stdout, etcd.Stderr = log, log
	etcd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Pdeathsig: syscall.SIGKILL}
	if err := etcd.Start(); err != nil {
		return nil, err
	}
	s := &patroniSite{dir: dir, env: env, etcd: etcd, dcs: fmt.Sprintf("127.0.0.1:%d", ports[0])}
	if err := waitFor(30*time.Second, func() error {
		resp, err := http.Get(curl + "/health")
		if err != nil {
			return err
		}
		resp.Body.Close()
		return nil
	}); err != nil {
		s.stop()
		return nil, err
	}
	f, err := os.OpenFile(filepath.Join(dir, "site.yaml"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		s.stop()
		return nil, err
	}
	defer f.Close()
	_, err = fmt.Fprintf(f, "patroni:\n  restapi_port: %d\n  ttl: 20\n  loop_wait: 2\n  retry_timeout: 5\n  dcs:\n    kind: etcd\n    hosts: [%s]\n", ports[2], s.dcs)
	return s, err
}

func (s *patroniSite) stop() {
	_ = s.etcd.Process.Kill()
	_ = s.etcd.Wait()
}

func waitFor(timeout time.Duration, f func() error) error {
	deadline := time.Now().Add(timeout)
	for {
		err := f()
		if err == nil || time.Now().After(deadline) {
			return err
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// createMembers creates pg1 and pg2 of cluster with pgherd, one after the
// other (the second clones the first), and returns the time it took.
func (h *harness) createMembers(ctx context.Context, s *patroniSite, cluster string) (time.Duration, error) {
	var total time.Duration
	for _, name := range []string{"pg1", "pg2"} {
		d, err := h.timeCmd(ctx, s.env, false, h.pgherd, "-q", "instance", "create", name,
			"--patroni-cluster", cluster, "--patroni-postgresql-connect-host", "127.0.1.1")
		if err != nil {
			return 0, err
		}
		total += d
	}
	return total, nil
}

func (h *harness) dropMembers(ctx context.Context, s *patroniSite) {
	_, _ = h.timeCmd(ctx, s.env, false, h.pgherd, "-q", "instance", "drop", "pg2", "--yes")
	_, _ = h.timeCmd(ctx, s.env, false, h.pgherd, "-q", "instance", "drop", "pg1", "--yes", "--purge-cluster")
}

// benchPatroniList compares listing a running two-member cluster with
// pgherd and with patronictl on the same YAML.
func benchPatroniList(ctx context.Context, h *harness) (result, error) {
	s, err := h.patroniSite(filepath.Join(h.work, "patroni-list"), 55410)
	if err != nil {
		return result{}, err
	}
	defer s.stop()
	if _, err := h.createMembers(ctx, s, "list"); err != nil {
		return result{}, err
	}
	defer h.dropMembers(ctx, s)
	yaml := filepath.Join(s.dir, "prefix", "etc", "patroni", "15-pg1.yaml")
	runs := h.runs * 2
	var mine, ref []time.Duration
	for n := 0; n < runs; n++ {
		d, err := h.timeCmd(ctx, s.env, false, h.pgherd, "patroni", "list", "pg1")
		if err != nil {
			return result{}, err
		}
		mine = append(mine, d)
		if d, err = h.timeCmd(ctx, nil, false, "patronictl", "-c", yaml, "list"); err != nil {
			return result{}, err
		}
		ref = append(ref, d)
	}
	return result{pgherd: median(mine), reference: median(ref), runs: runs, note: "two members on etcd 3.4, same YAML"}, nil
}

// benchPatroniBootstrap times creating a two-member cluster with pgherd
// (configuration, validation, start, wait, for each member in turn) against
// starting Patroni by hand on the same YAML files in the same order: the
// first member, wait until it is ready and leads, then the second, until
// GET /cluster shows both running.
func benchPatroniBootstrap(ctx context.Context, h *harness) (result, error) {
	s, err := h.patroniSite(filepath.Join(h.work, "patroni-bootstrap"), 55420)
	if err != nil {
		return result{}, err
	}
	defer s.stop()
	var mine, ref []time.Duration
	for n := 0; n < h.runs; n++ {
		cluster := fmt.Sprintf("boot%d", n)
		d, err := h.createMembers(ctx, s, cluster)
		if err != nil {
			return result{}, err
		}
		mine = append(mine, d)
		if d, err = h.patroniByHand(ctx, s, cluster); err != nil {
			h.dropMembers(ctx, s)
			return result{}, err
		}
		ref = append(ref, d)
		h.dropMembers(ctx, s)
	}
	return result{pgherd: median(mine), reference: median(ref), runs: h.runs, note: "ttl 20 / loop_wait 2; members started one after the other"}, nil
}

// patroniByHand stops the members pgherd made, wipes their data and the
// cluster's DCS keys, and bootstraps the cluster again by starting patroni on
// the same YAML files; it returns the time from the first start until both
// members run.
func (h *harness) patroniByHand(ctx context.Context, s *patroniSite, cluster string) (time.Duration, error) {
	for _, name := range []string{"pg2", "pg1"} {
		if _, err := h.timeCmd(ctx, s.env, false, h.pgherd, "-q", "instance", "stop", name); err != nil {
			return 0, err
		}
		if err := os.RemoveAll(filepath.Join(s.dir, "prefix", "srv", "pgsql", "15", name, "data")); err != nil {
			return 0, err
		}
	}
	if _, err := h.timeCmd(ctx, []string{"ETCDCTL_API=3"}, false, "etcdctl", "--endpoints", s.dcs, "del", "--prefix", "/service/"+cluster+"/"); err != nil {
		return 0, err
	}
	var procs []*exec.Cmd
	defer func() {
		for _, p := range procs {
			_ = p.Process.Signal(syscall.SIGTERM)
			_ = p.Wait()
		}
	}()
	start := time.Now()
	for i, name := range []string{"pg1", "pg2"} {
		yaml := filepath.Join(s.dir, "prefix", "etc", "patroni", "15-"+name+".yaml")
		p := exec.Command("patroni", yaml)
		p.Env = []string{"PATH=/usr/bin:/bin", "LANG=C.UTF-8", "HOME=/"}
		log, err := os.OpenFile(filepath.Join(s.dir, name+"-by-hand.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			return 0, err
		}
		p.Stdout, p.Stderr = log, log
		p.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Credential: h.cred, Pdeathsig: syscall.SIGTERM}
		err = p.Start()
		log.Close()
		if err != nil {
			return 0, err
		}
		procs = append(procs, p)
		cfg, err := patroni.ReadFile(yaml)
		if err != nil {
			return 0, err
		}
		api := "http://" + cfg.RestAPI.ConnectAddress
		if err := waitFor(120*time.Second, func() error { return running(api, i+1) }); err != nil {
			return 0, fmt.Errorf("patroni by hand, %s: %w", name, err)
		}
	}
	return time.Since(start), nil
}

// running returns nil when GET /cluster at api lists n members, all
// running, one of them the leader: what pgherd waits for too (a bootstrap
// is over once its first member holds the leader key).
func running(api string, n int) error {
	c := http.Client{Timeout: 2 * time.Second}
	resp, err := c.Get(api + "/cluster")
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	var cl struct {
		Members []struct{ State, Role string } `json:"members"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&cl); err != nil {
		return err
	}
	if len(cl.Members) != n {
		return errors.New(strconv.Itoa(len(cl.Members)) + " members")
	}
	leader := false
	for _, m := range cl.Members {
		if m.State != "running" {
			return errors.New("a member is " + m.State)
		}
		leader = leader || m.Role == "leader"
	}
	if !leader {
		return errors.New("no member holds the leader key yet")
	}
	return nil
}
