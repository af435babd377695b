// Package bench measures the embedded DCS against a real etcd 3.4, side
// by side in one run: both as 3-member clusters of separate processes on
// loopback with fsync on, driven by etcd's own Go client. Both run on
// plain TCP, or both on TLS with client certificates on both ports.
package bench

import (
	"context"
	"crypto/tls"
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
	Rounds        int           // alternating rounds the puts are split into
	// TLS runs both systems with TLS on their client and peer ports, each
	// port demanding a client certificate (etcd's --client-cert-auth and
	// --peer-client-cert-auth, pgherd's peer_tls and client_tls with a CA),
	// from certificates made for the run in Dir.
	TLS bool
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

// Run starts both clusters, then measures them in alternating rounds
// (etcd then pgherd, pgherd then etcd, ...), never loading both at once:
// a slow phase of a shared machine (another job, the disk flushing) then
// falls on both systems alike instead of on whichever ran second. It stops
// every process it started.
func Run(ctx context.Context, o Options) (*Result, error) {
	r := &Result{Opts: o}
	var certs *benchPKI
	if o.TLS {
		var err error
		if certs, err = newBenchPKI(filepath.Join(o.Dir, "pki")); err != nil {
			return nil, err
		}
	}
	var all []proc
	defer func() {
		for _, p := range all {
			p.stop()
		}
	}()
	var sides [2]*side
	for i, start := range []func(context.Context, Options, *benchPKI) ([]proc, []string, error){startEtcd, startPgherd} {
		procs, eps, err := start(ctx, o, certs)
		all = append(all, procs...)
		if err != nil {
			return nil, err
		}
		if sides[i], err = newSide(procs, eps, o.Clients, certs.clientTLS()); err != nil {
			return nil, err
		}
		defer sides[i].close()
	}
	sides[0].f, sides[1].f = &r.Etcd, &r.Pgherd
	time.Sleep(o.Idle)
	for _, s := range sides {
		s.f.IdleRSS = meanRSS(s.procs)
	}
	rounds := max(o.Rounds, 1)
	for i := range rounds {
		order := sides
		if i%2 == 1 {
			order[0], order[1] = sides[1], sides[0]
		}
		for _, s := range order {
			if err := s.round(ctx, o, i, o.SeqPuts/rounds, o.ParallelPuts/rounds); err != nil {
				return nil, err
			}
		}
	}
	time.Sleep(o.Idle)
	for _, s := range sides {
		s.finish()
		s.f.AfterLoadRSS = meanRSS(s.procs)
	}
	return r, nil
}

func startEtcd(ctx context.Context, o Options, certs *benchPKI) ([]proc, []string, error) {
	scheme := "http://"
	if certs != nil {
		scheme = "https://"
	}
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
		peers, clients = append(peers, scheme+p), append(clients, scheme+c)
		initial = append(initial, fmt.Sprintf("e%d=%s", i, peers[i]))
	}
	var procs []proc
	for i := range 3 {
		name := fmt.Sprintf("e%d", i)
		args := []string{"--name", name,
			"--data-dir", filepath.Join(o.Dir, fmt.Sprintf("etcd%d", i)),
			"--listen-peer-urls", peers[i], "--initial-advertise-peer-urls", peers[i],
			"--listen-client-urls", clients[i], "--advertise-client-urls", clients[i],
			"--initial-cluster", strings.Join(initial, ","), "--initial-cluster-state", "new",
			"--log-level", "error", "--logger", "zap"}
		if certs != nil {
			peer, client, err := certs.member(name)
			if err != nil {
				return procs, nil, err
			}
			args = append(args,
				"--cert-file", client.Cert, "--key-file", client.Key, "--client-cert-auth", "--trusted-ca-file", client.CA,
				"--peer-cert-file", peer.Cert, "--peer-key-file", peer.Key, "--peer-client-cert-auth", "--peer-trusted-ca-file", peer.CA)
		}
		cmd := exec.Command("etcd", args...)
		if err := cmd.Start(); err != nil {
			return procs, nil, fmt.Errorf("start etcd: %w", err)
		}
		procs = append(procs, proc{cmd})
	}
	return procs, clients, waitReady(ctx, clients, certs.clientTLS())
}

func startPgherd(ctx context.Context, o Options, certs *benchPKI) ([]proc, []string, error) {
	scheme := "http://"
	if certs != nil {
		scheme = "https://"
	}
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
		if certs != nil {
			if cfg.PeerTLS, cfg.ClientTLS, err = certs.member(cfg.Name); err != nil {
				return procs, nil, err
			}
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
		eps = append(eps, scheme+client)
		if err := waitReady(ctx, eps, certs.clientTLS()); err != nil {
			return procs, nil, err
		}
	}
	return procs, eps, waitVoters(ctx, eps, certs.clientTLS())
}

func waitReady(ctx context.Context, eps []string, tc *tls.Config) error {
	cl, err := clientv3.New(clientv3.Config{Endpoints: eps, DialTimeout: 5 * time.Second, TLS: tc})
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

func waitVoters(ctx context.Context, eps []string, tc *tls.Config) error {
	cl, err := clientv3.New(clientv3.Config{Endpoints: eps, DialTimeout: 5 * time.Second, TLS: tc})
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

// side is one cluster under measurement: its clients and what they
// measured so far.
type side struct {
	procs   []proc
	seq     *clientv3.Client
	par     []*clientv3.Client
	f       *Figures
	lat     []time.Duration
	puts    int
	putTime time.Duration
}

func newSide(procs []proc, eps []string, clients int, tc *tls.Config) (*side, error) {
	s := &side{procs: procs}
	cfg := clientv3.Config{Endpoints: eps, DialTimeout: 5 * time.Second, TLS: tc}
	var err error
	if s.seq, err = clientv3.New(cfg); err != nil {
		return nil, err
	}
	for range clients {
		c, err := clientv3.New(cfg)
		if err != nil {
			s.close()
			return nil, err
		}
		s.par = append(s.par, c)
	}
	return s, nil
}

func (s *side) close() {
	for _, c := range append(s.par, s.seq) {
		c.Close()
	}
}

// round runs seq sequential puts, then par puts spread over the parallel
// clients; keys of round i do not collide with other rounds' keys.
func (s *side) round(ctx context.Context, o Options, i, seq, par int) error {
	value := strings.Repeat("v", o.ValueSize)
	for j := range seq {
		t0 := time.Now()
		if _, err := s.seq.Put(ctx, fmt.Sprintf("/bench/seq/%d", (i*seq+j)%1000), value); err != nil {
			return fmt.Errorf("sequential put: %w", err)
		}
		s.lat = append(s.lat, time.Since(t0))
	}
	per := par / len(s.par)
	var wg sync.WaitGroup
	errs := make(chan error, len(s.par))
	t0 := time.Now()
	for k, c := range s.par {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range per {
				if _, err := c.Put(ctx, fmt.Sprintf("/bench/par/%d/%d", k, j%100), value); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	s.putTime += time.Since(t0)
	s.puts += per * len(s.par)
	select {
	case err := <-errs:
		return fmt.Errorf("parallel put: %w", err)
	default:
	}
	return nil
}

// finish turns the rounds' measurements into figures.
func (s *side) finish() {
	sort.Slice(s.lat, func(i, j int) bool { return s.lat[i] < s.lat[j] })
	s.f.P50, s.f.P99 = s.lat[len(s.lat)/2], s.lat[len(s.lat)*99/100]
	s.f.Throughput = float64(s.puts) / s.putTime.Seconds()
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

// Markdown renders the figures and the ratios pgherd/etcd as a table.
func (r *Result) Markdown() string {
	return "| figure | etcd 3.4 | pgherd dcs | pgherd / etcd |\n|---|---|---|---|\n" + r.Rows()
}

// Rows renders the table's rows alone, so that a TLS run's rows can follow
// a plain run's in one table; a TLS run's figures are named so.
func (r *Result) Rows() string {
	var b strings.Builder
	name := func(figure string) string {
		if r.Opts.TLS {
			return figure + ", TLS"
		}
		return figure
	}
	mb := func(v int64) string { return fmt.Sprintf("%.1f MB", float64(v)/1e6) }
	ratio := func(a, b float64) string { return fmt.Sprintf("%.2f×", a/b) }
	fmt.Fprintf(&b, "| %s | %s | %s | %s |\n", name("sequential put p50"), r.Etcd.P50.Round(time.Microsecond), r.Pgherd.P50.Round(time.Microsecond), ratio(float64(r.Pgherd.P50), float64(r.Etcd.P50)))
	fmt.Fprintf(&b, "| %s | %s | %s | %s |\n", name("sequential put p99"), r.Etcd.P99.Round(time.Microsecond), r.Pgherd.P99.Round(time.Microsecond), ratio(float64(r.Pgherd.P99), float64(r.Etcd.P99)))
	fmt.Fprintf(&b, "| %s | %.0f | %.0f | %s |\n", name(fmt.Sprintf("puts/s, %d clients", r.Opts.Clients)), r.Etcd.Throughput, r.Pgherd.Throughput, ratio(r.Pgherd.Throughput, r.Etcd.Throughput))
	fmt.Fprintf(&b, "| %s | %s | %s | %s |\n", name("idle RSS per member"), mb(r.Etcd.IdleRSS), mb(r.Pgherd.IdleRSS), ratio(float64(r.Pgherd.IdleRSS), float64(r.Etcd.IdleRSS)))
	fmt.Fprintf(&b, "| %s | %s | %s | %s |\n", name("RSS after the load"), mb(r.Etcd.AfterLoadRSS), mb(r.Pgherd.AfterLoadRSS), ratio(float64(r.Pgherd.AfterLoadRSS), float64(r.Etcd.AfterLoadRSS)))
	return b.String()
}
