package hacluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/pgherd/pgherd/pkg/dcs"
	"github.com/pgherd/pgherd/pkg/patroni"
)

// DCSKind selects the store Patroni uses and what the witness is.
type DCSKind string

// The three setups.
const (
	DCSPgherd DCSKind = "pgherd" // embedded DCS: a member per data host plus a witness member
	DCSRaft   DCSKind = "raft"   // Patroni's Raft with patroni_raft_controller as witness
	DCSEtcd   DCSKind = "etcd"   // one etcd member that no failure touches (no witness)
)

// PGBinDir is where PostgreSQL 15 lives on Debian.
const PGBinDir = "/usr/lib/postgresql/15/bin"

// Host is one machine of the cluster: an address its services listen on
// and, optionally, the network namespace they run in.
type Host struct {
	Name string
	Addr string
	// PeerAddr, when set, is where the host's DCS member (DCSPgherd)
	// listens for its peers (Netns.AddPeerNetwork); its client port stays
	// on Addr. Empty: Addr.
	PeerAddr string
	Netns    string
}

// Options describe a cluster.
type Options struct {
	Base            string              // working directory, traversable by the system user
	Pgherd          string              // pgherd binary (DCSPgherd)
	Cred            *syscall.Credential // run everything as this user; nil: the current one
	DCS             DCSKind
	Timings         patroni.Timings
	SynchronousMode bool
	// SynchronousModeStrict is Patroni's synchronous_mode_strict.
	SynchronousModeStrict bool
	// FastFailoverDetect, with DCSPgherd, arms host-aware revocation:
	// each data member declares the Patroni member beside it (always, as
	// pgherd does) with this detect (0: off).
	FastFailoverDetect time.Duration
	// Hosts are n1, n2 and the witness; zero values mean 127.0.1.1,
	// 127.0.1.2 and 127.0.1.3 in the current namespace.
	Hosts [3]Host
	Scope string // Patroni scope; default "ha"
	// PatroniExe is the patroni program; default patroni.DefaultExe. A
	// copy lets a test make it unexecutable, so that nothing can restart
	// a Patroni it killed.
	PatroniExe string
	// WitnessPgherd is the pgherd binary the witness member runs (its `dcs
	// serve` execs the pgherd-dcs beside it); default Pgherd. Copies of
	// their own stand for a witness on its own host: processes of one
	// binary file share its pages on one machine.
	WitnessPgherd string
}

// Node is one data host: PostgreSQL under Patroni, and with DCSPgherd the
// host's DCS member.
type Node struct {
	Host    Host
	Name    string
	PGPort  int
	APIPort int
	Dir     string
	DataDir string
	Patroni *Proc
	DCS     *Proc

	yaml, dcsYAML string
}

// PatroniYAML is node n's Patroni configuration file.
func (n *Node) PatroniYAML() string { return filepath.Join(n.Dir, "patroni.yaml") }

// Cluster is a running two-node cluster with its witness.
type Cluster struct {
	Opts    Options
	Nodes   []*Node
	Witness *Proc
	Creds   patroni.Credentials
	// DCSClients are the client endpoints (HOST:PORT) Patroni uses
	// (DCSPgherd, DCSEtcd); with DCSPgherd the witness member's is last.
	DCSClients []string

	r          *runner
	witnessCmd []string
	witnessLog string
	peerAddrs  map[string]string // DCS member name → peer address (DCSPgherd)
}

// Start sets up and starts the cluster and waits until one node leads and
// the other streams. The caller must call Stop, also when Start fails.
func Start(ctx context.Context, o Options) (*Cluster, error) {
	if o.Scope == "" {
		o.Scope = "ha"
	}
	if o.PatroniExe == "" {
		o.PatroniExe = patroni.DefaultExe
	}
	for i, def := range []string{"127.0.1.1", "127.0.1.2", "127.0.1.3"} {
		if o.Hosts[i].Addr == "" {
			o.Hosts[i].Addr = def
		}
		if o.Hosts[i].Name == "" {
			o.Hosts[i].Name = []string{"n1", "n2", "w"}[i]
		}
	}
	creds, err := patroni.GenerateCredentials()
	if err != nil {
		return nil, err
	}
	c := &Cluster{Opts: o, Creds: creds, r: &runner{cred: o.Cred}, peerAddrs: map[string]string{}}
	for _, h := range o.Hosts[:2] {
		n := &Node{Host: h, Name: h.Name, Dir: filepath.Join(o.Base, h.Name)}
		n.DataDir = filepath.Join(n.Dir, "data")
		if n.PGPort, err = c.port(h, 5432); err != nil {
			return c, err
		}
		if n.APIPort, err = c.port(h, 8008); err != nil {
			return c, err
		}
		for _, d := range []string{n.Dir, filepath.Join(n.Dir, "run"), filepath.Join(n.Dir, "log"), filepath.Join(n.Dir, "dcs")} {
			if err := c.mkdir(d); err != nil {
				return c, err
			}
		}
		c.Nodes = append(c.Nodes, n)
	}
	hosts, err := c.startDCS(ctx)
	if err != nil {
		return c, err
	}
	c.DCSClients = hosts
	for _, n := range c.Nodes {
		if err := c.writePatroni(n, hosts); err != nil {
			return c, err
		}
	}
	for _, n := range c.Nodes {
		if err := c.startPatroni(n); err != nil {
			return c, err
		}
	}
	wctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	if err := c.WaitHealthy(wctx); err != nil {
		return c, fmt.Errorf("cluster not healthy: %w\n%s", err, c.Logs())
	}
	return c, nil
}

// port returns a free port on h: fixed ports in a namespace of its own
// (nothing else listens there), a probed one on loopback.
func (c *Cluster) port(h Host, fixed int) (int, error) {
	if h.Netns != "" {
		return fixed, nil
	}
	return freePort(h.Addr)
}

func (c *Cluster) mkdir(d string) error {
	if err := os.MkdirAll(d, 0o700); err != nil {
		return err
	}
	if c.Opts.Cred != nil {
		return os.Chown(d, int(c.Opts.Cred.Uid), int(c.Opts.Cred.Gid))
	}
	return nil
}

func (c *Cluster) writeFile(path string, data []byte) error {
	if err := os.WriteFile(path, data, 0o600); err != nil {
		return err
	}
	if c.Opts.Cred != nil {
		return os.Chown(path, int(c.Opts.Cred.Uid), int(c.Opts.Cred.Gid))
	}
	return nil
}

// startDCS starts the store and returns the client addresses Patroni's
// etcd3 section lists (none for Raft).
func (c *Cluster) startDCS(ctx context.Context) ([]string, error) {
	switch c.Opts.DCS {
	case DCSEtcd:
		return c.startEtcd(ctx)
	case DCSRaft:
		return nil, c.startRaftWitness()
	case DCSPgherd:
		return c.startPgherdDCS(ctx)
	}
	return nil, fmt.Errorf("unknown DCS kind %q", c.Opts.DCS)
}

func (c *Cluster) startPgherdDCS(ctx context.Context) ([]string, error) {
	wdir := filepath.Join(c.Opts.Base, "w")
	if err := c.mkdir(wdir); err != nil {
		return nil, err
	}
	type member struct {
		host  Host
		dir   string
		role  string
		set   func(cfgFile string)
		proc  func(p *Proc)
		first bool
	}
	var clients []string
	var firstPeer string
	members := []member{}
	for i, n := range c.Nodes {
		n := n
		members = append(members, member{host: n.Host, dir: filepath.Join(n.Dir, "dcs"), role: dcs.RoleData, first: i == 0,
			set: func(f string) { n.dcsYAML = f }, proc: func(p *Proc) { n.DCS = p }})
	}
	members = append(members, member{host: c.Opts.Hosts[2], dir: filepath.Join(wdir, "dcs"), role: dcs.RoleWitness,
		set: func(string) {}, proc: func(p *Proc) { c.Witness = p }})
	for _, m := range members {
		peerPort, err := c.port(m.host, 2380)
		if err != nil {
			return nil, err
		}
		clientPort, err := c.port(m.host, 2379)
		if err != nil {
			return nil, err
		}
		if err := c.mkdir(m.dir); err != nil {
			return nil, err
		}
		cfg := dcs.Config{Name: m.host.Name, Role: m.role, Zone: "zone-" + m.host.Name, DataDir: filepath.Join(m.dir, "data"),
			ListenPeer: net.JoinHostPort(m.host.Addr, strconv.Itoa(peerPort)), ListenClient: net.JoinHostPort(m.host.Addr, strconv.Itoa(clientPort))}
		if m.role == dcs.RoleData {
			// As `instance create` does: the Patroni member beside it and
			// the leader key, held by the DCS; detect arms revocation.
			cfg.FastFailover = dcs.FastFailover{LeaderKey: patroni.LeaderKey("", c.Opts.Scope), Node: m.host.Name}
			if c.Opts.FastFailoverDetect > 0 {
				cfg.FastFailover.Detect, cfg.FastFailover.LoopWait = c.Opts.FastFailoverDetect, time.Duration(c.Opts.Timings.LoopWait)*time.Second
			}
		}
		if m.host.PeerAddr != "" {
			cfg.ListenPeer = net.JoinHostPort(m.host.PeerAddr, strconv.Itoa(peerPort))
		}
		if !m.first {
			cfg.Join = []string{firstPeer}
		} else {
			firstPeer = cfg.ListenPeer
		}
		c.peerAddrs[cfg.Name] = cfg.ListenPeer
		raw, err := yaml.Marshal(cfg)
		if err != nil {
			return nil, err
		}
		file := filepath.Join(m.dir, "member.yaml")
		if err := c.writeFile(file, raw); err != nil {
			return nil, err
		}
		m.set(file)
		exe := c.Opts.Pgherd
		if m.role == dcs.RoleWitness && c.Opts.WitnessPgherd != "" {
			exe = c.Opts.WitnessPgherd
		}
		args := []string{exe, "dcs", "serve", "--config", file}
		log := filepath.Join(m.dir, "member.log")
		p, err := c.r.start("dcs "+cfg.Name, m.host.Netns, log, m.dir, []string{"PATH=/usr/bin:/bin"}, args...)
		if err != nil {
			return nil, err
		}
		m.proc(p)
		if m.role == dcs.RoleWitness {
			c.witnessCmd, c.witnessLog = args, log
		}
		clients = append(clients, cfg.ListenClient)
		// Each member must be up (the first one leading) before the next joins.
		wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		err = poll(wctx, 100*time.Millisecond, func() error {
			if !p.Alive() {
				return fmt.Errorf("dcs member %s exited: %s", cfg.Name, tail(log, 5))
			}
			_, err := c.dcsMembers(wctx, m.host, cfg.ListenPeer)
			return err
		})
		cancel()
		if err != nil {
			return nil, err
		}
	}
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	return clients, poll(wctx, 200*time.Millisecond, func() error {
		ms, err := c.dcsMembers(wctx, c.Opts.Hosts[0], firstPeer)
		if err != nil {
			return err
		}
		voters := 0
		for _, m := range ms {
			if m.Suffrage == "voter" && m.Healthy {
				voters++
			}
		}
		if voters != 3 {
			return fmt.Errorf("%d healthy voters", voters)
		}
		return nil
	})
}

// dcsMembers runs `pgherd dcs members` on host h (inside its namespace).
func (c *Cluster) dcsMembers(ctx context.Context, h Host, peer string) ([]dcs.MemberStatus, error) {
	args := []string{c.Opts.Pgherd, "dcs", "members", "--peer", peer, "-o", "json"}
	if h.Netns != "" {
		args = append([]string{"ip", "netns", "exec", h.Netns}, args...)
	}
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	cmd := exec.CommandContext(cctx, args[0], args[1:]...)
	cmd.Env = []string{"PATH=/usr/sbin:/usr/bin:/bin", "PGHERD_PREFIX=" + c.Opts.Base, "PGHERD_RUN_PREFIX=" + c.Opts.Base}
	out, err := cmd.Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return nil, fmt.Errorf("dcs members: %s", ee.Stderr)
		}
		return nil, err
	}
	var ms []dcs.MemberStatus
	return ms, json.Unmarshal(out, &ms)
}

// DCSLeader returns the name of the DCS member that leads Raft (DCSPgherd
// only), asked through any member that answers.
func (c *Cluster) DCSLeader(ctx context.Context) (string, error) {
	for _, h := range c.Opts.Hosts {
		ms, err := c.dcsMembers(ctx, h, c.peerAddrs[h.Name])
		if err != nil {
			continue
		}
		for _, m := range ms {
			if m.RaftState == "leader" {
				return m.Name, nil
			}
		}
	}
	return "", errors.New("no DCS leader")
}

func (c *Cluster) startEtcd(ctx context.Context) ([]string, error) {
	dir := filepath.Join(c.Opts.Base, "etcd")
	if err := c.mkdir(dir); err != nil {
		return nil, err
	}
	cport, err := freePort("127.0.0.1")
	if err != nil {
		return nil, err
	}
	pport, err := freePort("127.0.0.1")
	if err != nil {
		return nil, err
	}
	curl, purl := fmt.Sprintf("http://127.0.0.1:%d", cport), fmt.Sprintf("http://127.0.0.1:%d", pport)
	p, err := c.r.start("etcd", "", filepath.Join(dir, "etcd.log"), dir, []string{"PATH=/usr/bin:/bin"},
		"/usr/bin/etcd", "--name", "e1", "--data-dir", filepath.Join(dir, "data"),
		"--listen-client-urls", curl, "--advertise-client-urls", curl,
		"--listen-peer-urls", purl, "--initial-advertise-peer-urls", purl,
		"--initial-cluster", "e1="+purl, "--initial-cluster-state", "new")
	if err != nil {
		return nil, err
	}
	c.Witness = p
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	host := fmt.Sprintf("127.0.0.1:%d", cport)
	return []string{host}, poll(wctx, 100*time.Millisecond, func() error {
		conn, err := net.DialTimeout("tcp", host, time.Second)
		if err == nil {
			conn.Close()
		}
		return err
	})
}

// raftAddrs are the pysyncobj addresses of n1, n2 and the witness.
func (c *Cluster) raftAddrs() []string {
	out := make([]string, 3)
	for i, h := range c.Opts.Hosts {
		out[i] = net.JoinHostPort(h.Addr, strconv.Itoa(5010+i+1))
	}
	return out
}

func (c *Cluster) startRaftWitness() error {
	dir := filepath.Join(c.Opts.Base, "w")
	if err := c.mkdir(dir); err != nil {
		return err
	}
	addrs := c.raftAddrs()
	cfg := map[string]any{"raft": map[string]any{"data_dir": filepath.Join(dir, "raft"), "self_addr": addrs[2], "partner_addrs": addrs[:2]}}
	raw, _ := yaml.Marshal(cfg)
	file := filepath.Join(dir, "witness.yaml")
	if err := c.writeFile(file, raw); err != nil {
		return err
	}
	if err := c.mkdir(filepath.Join(dir, "raft")); err != nil {
		return err
	}
	c.witnessCmd, c.witnessLog = []string{"/usr/bin/patroni_raft_controller", file}, filepath.Join(dir, "witness.log")
	return c.StartWitness()
}

// StartWitness (re)starts the witness with its first configuration; its
// data directory is kept, so it rejoins.
func (c *Cluster) StartWitness() error {
	if c.Witness != nil && c.Witness.Alive() {
		return errors.New("the witness is running")
	}
	h := c.Opts.Hosts[2]
	p, err := c.r.start("witness", h.Netns, c.witnessLog, filepath.Dir(c.witnessLog), patroni.Environ(filepath.Dir(c.witnessLog)), c.witnessCmd...)
	if err != nil {
		return err
	}
	c.Witness = p
	return nil
}

// writePatroni writes node n's Patroni YAML for the cluster's DCS.
func (c *Cluster) writePatroni(n *Node, etcdHosts []string) error {
	cfg := patroni.New(patroni.Spec{
		Cluster: c.Opts.Scope, Node: n.Name,
		RestAPIConnect: net.JoinHostPort(n.Host.Addr, strconv.Itoa(n.APIPort)),
		PGConnectHost:  n.Host.Addr, PGPort: n.PGPort,
		DataDir: n.DataDir, BinDir: PGBinDir,
		SocketDir: filepath.Join(n.Dir, "run"), PgPass: filepath.Join(n.Dir, "pgpass"), LogDir: filepath.Join(n.Dir, "log"),
		Etcd:                  patroni.Etcd3{Hosts: etcdHosts},
		Timings:               c.Opts.Timings,
		SynchronousMode:       c.Opts.SynchronousMode,
		SynchronousModeStrict: c.Opts.SynchronousModeStrict,
		Parameters:            map[string]string{"shared_buffers": "16MB", "max_connections": "50"},
		Credentials:           c.Creds,
		DataChecksums:         true,
	})
	raw, err := cfg.Marshal()
	if err != nil {
		return err
	}
	if c.Opts.DCS == DCSRaft {
		var m map[string]any
		if err := yaml.Unmarshal(raw, &m); err != nil {
			return err
		}
		delete(m, "etcd3")
		addrs := c.raftAddrs()
		self := addrs[0]
		partners := []string{addrs[1], addrs[2]}
		if n.Name == c.Nodes[1].Name {
			self, partners = addrs[1], []string{addrs[0], addrs[2]}
		}
		m["raft"] = map[string]any{"data_dir": filepath.Join(n.Dir, "raft"), "self_addr": self, "partner_addrs": partners}
		if err := c.mkdir(filepath.Join(n.Dir, "raft")); err != nil {
			return err
		}
		if raw, err = yaml.Marshal(m); err != nil {
			return err
		}
	}
	n.yaml = n.PatroniYAML()
	return c.writeFile(n.yaml, raw)
}

func (c *Cluster) startPatroni(n *Node) error {
	p, err := c.r.start("patroni "+n.Name, n.Host.Netns, filepath.Join(n.Dir, "patroni.out"), n.Dir, patroni.Environ(n.Dir), c.Opts.PatroniExe, n.yaml)
	if err != nil {
		return err
	}
	n.Patroni = p
	return nil
}

// KillHost SIGKILLs everything of node n at once: Patroni, the
// postmaster and, with DCSPgherd, the host's DCS member.
func (c *Cluster) KillHost(n *Node) {
	pids := []int{n.Patroni.PID(), postmasterPID(n.DataDir)}
	if n.DCS != nil {
		pids = append(pids, n.DCS.PID())
	}
	for _, pid := range pids {
		if pid > 0 {
			syscall.Kill(pid, syscall.SIGKILL)
		}
	}
	n.Patroni.Kill()
	if n.DCS != nil {
		n.DCS.Kill()
	}
}

// StartHost starts a killed node again: its DCS member, then Patroni.
func (c *Cluster) StartHost(n *Node) error {
	if n.dcsYAML != "" {
		if err := c.startMember(n); err != nil {
			return err
		}
	}
	return c.startPatroni(n)
}

// startMember starts node n's DCS member again, with its data.
func (c *Cluster) startMember(n *Node) error {
	dir := filepath.Dir(n.dcsYAML)
	p, err := c.r.start("dcs "+n.Name, n.Host.Netns, filepath.Join(dir, "member.log"), dir, []string{"PATH=/usr/bin:/bin"},
		c.Opts.Pgherd, "dcs", "serve", "--config", n.dcsYAML)
	if err != nil {
		return err
	}
	n.DCS = p
	return nil
}

// Stop ends every process of the cluster (Patroni stops its PostgreSQL;
// a postmaster left behind is killed).
func (c *Cluster) Stop() {
	c.r.stopAll()
	for _, n := range c.Nodes {
		if pid := postmasterPID(n.DataDir); pid > 0 {
			syscall.Kill(pid, syscall.SIGKILL)
		}
	}
}

// Logs returns the tail of every Patroni and DCS log, for failures.
func (c *Cluster) Logs() string {
	var s string
	for _, n := range c.Nodes {
		s += fmt.Sprintf("==> %s patroni <==\n%s\n", n.Name, tail(filepath.Join(n.Dir, "log", "patroni.log"), 25))
		s += fmt.Sprintf("==> %s patroni.out <==\n%s\n", n.Name, tail(filepath.Join(n.Dir, "patroni.out"), 10))
		if n.dcsYAML != "" {
			s += fmt.Sprintf("==> %s dcs <==\n%s\n", n.Name, tail(filepath.Join(filepath.Dir(n.dcsYAML), "member.log"), 10))
		}
	}
	if c.witnessLog != "" {
		s += fmt.Sprintf("==> witness <==\n%s\n", tail(c.witnessLog, 10))
	}
	return s
}

// WaitDCSHealthy waits until every DCS member is healthy and three vote
// (DCSPgherd), or until Raft-mode Patroni answers (others: no check).
func (c *Cluster) WaitDCSHealthy(ctx context.Context, limit time.Duration) error {
	if c.Opts.DCS != DCSPgherd {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	return poll(ctx, 250*time.Millisecond, func() error {
		ms, err := c.dcsMembers(ctx, c.Opts.Hosts[2], c.peerAddrs[c.Opts.Hosts[2].Name])
		if err != nil {
			return err
		}
		voters := 0
		for _, m := range ms {
			if !m.Healthy {
				return fmt.Errorf("member %s is not healthy", m.Name)
			}
			if m.Suffrage == "voter" {
				voters++
			}
		}
		if voters != 3 {
			return fmt.Errorf("%d voters", voters)
		}
		return nil
	})
}

// MoveDCSLeaderOff makes sure node n's DCS member does not lead Raft
// (DCSPgherd): when it does, the member is killed until another one
// leads, then started again and waited for. Patroni on n meanwhile uses
// the other members' client ports.
func (c *Cluster) MoveDCSLeaderOff(ctx context.Context, n *Node) error {
	if c.Opts.DCS != DCSPgherd {
		return nil
	}
	l, err := c.DCSLeader(ctx)
	if err != nil || l != n.Name {
		return err
	}
	n.DCS.Kill()
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := poll(wctx, 200*time.Millisecond, func() error {
		l, err := c.DCSLeader(wctx)
		if err == nil && l == n.Name {
			err = errors.New("still the leader")
		}
		return err
	}); err != nil {
		return err
	}
	if err := c.startMember(n); err != nil {
		return err
	}
	return c.WaitDCSHealthy(ctx, 30*time.Second)
}
