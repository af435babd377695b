// Package bench measures the embedded DCS against a real etcd 3.4, side
// by side in one run: both as 3-member clusters of separate processes on
// loopback with fsync on, driven by etcd's own Go client.
package bench

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"gopkg.in/yaml.v3"

	"github.com/pgherd/pgherd/pkg/dcs"
)

// Options choose the workload. MemberCommand starts one pgherd member
// from a config file (for example `pgherd dcs serve --config FILE`).
type Options struct {
	Dir           string
	MemberCommand func(configFile string) *exec.Cmd
	SeqPuts       int // sequential puts for latency
	Clients       int // concurrent clients for throughput
	ParallelPuts  int // puts spread over the clients
	ValueSize     int
	Idle          time.Duration // wait before reading RSS
}

// Figures are one system's numbers.
type Figures struct {
	P50, P99     time.Duration // sequential put latency
	Throughput   float64       // puts per second with Clients clients
	IdleRSS      int64         // mean RSS of a member after start, bytes
	AfterLoadRSS int64         // mean RSS after the load and Idle, bytes
}

// Result holds both systems' figures.
type Result struct {
	Opts         Options
	Etcd, Pgherd Figures
}

type proc struct{ cmd *exec.Cmd }

func (p proc) stop() {
	p.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { p.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		p.cmd.Process.Kill()
		<-done
	}
}

func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// Run measures etcd, then pgherd, and stops every process it started.
func Run(ctx context.Context, o Options) (*Result, error) {
	r := &Result{Opts: o}
	for _, sys := range []struct {
		start func(context.Context, Options) ([]proc, []string, error)
		into  *Figures
	}{{startEtcd, &r.Etcd}, {startPgherd, &r.Pgherd}} {
		procs, eps, err := sys.start(ctx, o)
		defer func() {
			for _, p := range procs {
				p.stop()
			}
		}()
		if err != nil {
			return nil, err
		}
		if err := measure(ctx, o, procs, eps, sys.into); err != nil {
			return nil, err
		}
		for _, p := range procs {
			p.stop()
		}
		procs = nil
	}
	return r, nil
}

func startEtcd(ctx context.Context, o Options) ([]proc, []string, error) {
	var peers, clients, initial []string
	for i := range 3 {
		p, err := freeAddr()
		if err != nil {
			return nil, nil, err
		}
		c, err := freeAddr()
		if err != nil {
			return nil, nil, err
		}
		peers, clients = append(peers, "http://"+p), append(clients, "http://"+c)
		initial = append(initial, fmt.Sprintf("e%d=%s", i, peers[i]))
	}
	var procs []proc
	for i := range 3 {
		cmd := exec.Command("etcd", "--name", fmt.Sprintf("e%d", i),
			"--data-dir", filepath.Join(o.Dir, fmt.Sprintf("etcd%d", i)),
			"--listen-peer-urls", peers[i], "--initial-advertise-peer-urls", peers[i],
			"--listen-client-urls", clients[i], "--advertise-client-urls", clients[i],
			"--initial-cluster", strings.Join(initial, ","), "--initial-cluster-state", "new",
			"--log-level", "error", "--logger", "zap")
		if err := cmd.Start(); err != nil {
			return procs, nil, fmt.Errorf("start etcd: %w", err)
		}
		procs = append(procs, proc{cmd})
	}
	return procs, clients, waitReady(ctx, clients)
}

func startPgherd(ctx context.Context, o Options) ([]proc, []string, error) {
	var procs []proc
	var eps []string
	var first string
	for i := range 3 {
		peer, err := freeAddr()
		if err != nil {
			return procs, nil, err
		}
		client, err := freeAddr()
		if err != nil {
			return procs, nil, err
		}
		cfg := dcs.Config{Name: fmt.Sprintf("p%d", i), DataDir: filepath.Join(o.Dir, fmt.Sprintf("pgherd%d", i)),
			ListenPeer: peer, ListenClient: client}
		if i > 0 {
			cfg.Join = []string{first}
		} else {
			first = peer
		}
		raw, _ := yaml.Marshal(cfg)
		file := filepath.Join(o.Dir, cfg.Name+".yaml")
		if err := os.WriteFile(file, raw, 0o600); err != nil {
			return procs, nil, err
		}
		cmd := o.MemberCommand(file)
		if err := cmd.Start(); err != nil {
			return procs, nil, fmt.Errorf("start pgherd member: %w", err)
		}
		procs = append(procs, proc{cmd})
		eps = append(eps, "http://"+client)
		if err := waitReady(ctx, eps); err != nil {
			return procs, nil, err
		}
	}
	return procs, eps, waitVoters(ctx, eps)
}

func waitReady(ctx context.Context, eps []string) error {
	cl, err := clientv3.New(clientv3.Config{Endpoints: eps, DialTimeout: 5 * time.Second})
	if err != nil {
		return err
	}
	defer cl.Close()
	deadline := time.Now().Add(30 * time.Second)
	for {
		c, cancel := context.WithTimeout(ctx, 2*time.Second)
		_, err := cl.Put(c, "/bench/ready", "1")
		cancel()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("cluster at %v not ready: %w", eps, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func waitVoters(ctx context.Context, eps []string) error {
	cl, err := clientv3.New(clientv3.Config{Endpoints: eps, DialTimeout: 5 * time.Second})
	if err != nil {
		return err
	}
	defer cl.Close()
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		ml, err := cl.MemberList(ctx)
		if err != nil {
			continue
		}
		voters := 0
		for _, m := range ml.Members {
			if !m.IsLearner && len(m.ClientURLs) > 0 {
				voters++
			}
		}
		if voters == len(eps) {
			return nil
		}
	}
	return fmt.Errorf("members did not all become voters")
}

func measure(ctx context.Context, o Options, procs []proc, eps []string, f *Figures) error {
	time.Sleep(o.Idle)
	f.IdleRSS = meanRSS(procs)
	value := strings.Repeat("v", o.ValueSize)
	cl, err := clientv3.New(clientv3.Config{Endpoints: eps, DialTimeout: 5 * time.Second})
	if err != nil {
		return err
	}
	defer cl.Close()
	lat := make([]time.Duration, 0, o.SeqPuts)
	for i := range o.SeqPuts {
		t0 := time.Now()
		if _, err := cl.Put(ctx, fmt.Sprintf("/bench/seq/%d", i%1000), value); err != nil {
			return fmt.Errorf("sequential put: %w", err)
		}
		lat = append(lat, time.Since(t0))
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	f.P50, f.P99 = lat[len(lat)/2], lat[len(lat)*99/100]

	clients := make([]*clientv3.Client, o.Clients)
	for i := range clients {
		if clients[i], err = clientv3.New(clientv3.Config{Endpoints: eps, DialTimeout: 5 * time.Second}); err != nil {
			return err
		}
		defer clients[i].Close()
	}
	per := o.ParallelPuts / o.Clients
	var wg sync.WaitGroup
	errs := make(chan error, o.Clients)
	t0 := time.Now()
	for i, c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range per {
				if _, err := c.Put(ctx, fmt.Sprintf("/bench/par/%d/%d", i, j%100), value); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	f.Throughput = float64(per*o.Clients) / time.Since(t0).Seconds()
	select {
	case err := <-errs:
		return fmt.Errorf("parallel put: %w", err)
	default:
	}
	time.Sleep(o.Idle)
	f.AfterLoadRSS = meanRSS(procs)
	return nil
}

func meanRSS(procs []proc) int64 {
	var sum int64
	for _, p := range procs {
		raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.cmd.Process.Pid))
		if err != nil {
			continue
		}
		for _, l := range strings.Split(string(raw), "\n") {
			if f := strings.Fields(l); len(f) >= 2 && f[0] == "VmRSS:" {
				kb, _ := strconv.ParseInt(f[1], 10, 64)
				sum += kb * 1024
			}
		}
	}
	return sum / int64(len(procs))
}

// Markdown renders the figures and the ratios pgherd/etcd.
func (r *Result) Markdown() string {
	var b strings.Builder
	mb := func(v int64) string { return fmt.Sprintf("%.1f MB", float64(v)/1e6) }
	ratio := func(a, b float64) string { return fmt.Sprintf("%.2f×", a/b) }
	fmt.Fprintf(&b, "| figure | etcd 3.4 | pgherd dcs | pgherd / etcd |\n|---|---|---|---|\n")
	fmt.Fprintf(&b, "| sequential put p50 | %s | %s | %s |\n", r.Etcd.P50.Round(time.Microsecond), r.Pgherd.P50.Round(time.Microsecond), ratio(float64(r.Pgherd.P50), float64(r.Etcd.P50)))
	fmt.Fprintf(&b, "| sequential put p99 | %s | %s | %s |\n", r.Etcd.P99.Round(time.Microsecond), r.Pgherd.P99.Round(time.Microsecond), ratio(float64(r.Pgherd.P99), float64(r.Etcd.P99)))
	fmt.Fprintf(&b, "| puts/s, %d clients | %.0f | %.0f | %s |\n", r.Opts.Clients, r.Etcd.Throughput, r.Pgherd.Throughput, ratio(r.Pgherd.Throughput, r.Etcd.Throughput))
	fmt.Fprintf(&b, "| idle RSS per member | %s | %s | %s |\n", mb(r.Etcd.IdleRSS), mb(r.Pgherd.IdleRSS), ratio(float64(r.Pgherd.IdleRSS), float64(r.Etcd.IdleRSS)))
	fmt.Fprintf(&b, "| RSS after the load | %s | %s | %s |\n", mb(r.Etcd.AfterLoadRSS), mb(r.Pgherd.AfterLoadRSS), ratio(float64(r.Pgherd.AfterLoadRSS), float64(r.Etcd.AfterLoadRSS)))
	return b.String()
}
