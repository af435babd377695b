package patroni

import (
	"context"
	"errors"
	"net"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pgherd/pgherd/pkg/run"
)

func TestValidateWithPatroni(t *testing.T) {
	h := etcdEnv(t)
	m, err := h.memberConfig("v1")
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	r := run.Exec{Cred: h.cred}
	if err := m.cfg.ValidateWithPatroni(ctx, r, DefaultExe, m.yaml); err != nil {
		t.Fatalf("a generated config on %s was refused: %v", testHost, err)
	}

	// The REST API port taken: Patroni's validator says so, and we pass its words on.
	l, err := net.Listen("tcp", m.cfg.RestAPI.Listen)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	err = m.cfg.ValidateWithPatroni(ctx, r, DefaultExe, m.yaml)
	var verr *ValidatorError
	if !errors.As(err, &verr) {
		t.Fatalf("want a ValidatorError, got %v", err)
	}
	_, port, _ := net.SplitHostPort(m.cfg.RestAPI.Listen)
	want := "restapi.listen " + m.cfg.RestAPI.Listen + " didn't pass validation: 'Port " + port + " is already in use.'"
	if !strings.Contains(verr.Output, want) {
		t.Errorf("validator output %q lacks %q", verr.Output, want)
	}
	for _, pw := range h.creds.all() {
		if strings.Contains(err.Error(), pw) {
			t.Error("the error shows a password")
		}
	}

	if _, err := FindPatroni("/nonexistent/patroni"); !errors.Is(err, ErrNotInstalled) || !strings.Contains(err.Error(), "apt install patroni") {
		t.Errorf("missing patroni: %v", err)
	}
}

func TestClusterMembers(t *testing.T) {
	h := clusterEnv(t)
	ctx := context.Background()
	for _, m := range h.members {
		cl, err := m.client.Cluster(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(cl.Members) != 2 {
			t.Fatalf("%s sees %d members", m.name, len(cl.Members))
		}
		for _, mem := range cl.Members {
			self := h.member(mem.Name)
			if mem.Host != testHost || strconv.Itoa(mem.Port) != strings.TrimPrefix(self.cfg.PostgreSQL.ConnectAddress, testHost+":") {
				t.Errorf("member %+v does not match its config %s", mem, self.cfg.PostgreSQL.ConnectAddress)
			}
			if mem.APIURL != "http://"+self.cfg.RestAPI.ConnectAddress+"/patroni" {
				t.Errorf("api_url %s", mem.APIURL)
			}
			if mem.Timeline < 1 {
				t.Errorf("timeline %d", mem.Timeline)
			}
			switch mem.Role {
			case "leader":
				if mem.Lag != nil {
					t.Errorf("leader has a lag %+v", mem.Lag)
				}
			case "replica":
				if mem.Lag == nil || mem.Lag.Unknown {
					t.Errorf("replica lag %+v", mem.Lag)
				} else if mb, ok := mem.Lag.MB(); !ok || mb != 0 {
					t.Errorf("replica lag %d MB", mb)
				}
			default:
				t.Errorf("role %q", mem.Role)
			}
		}
		if err := m.client.Liveness(ctx); err != nil {
			t.Error(err)
		}
		if err := m.client.Readiness(ctx); err != nil {
			t.Error(err)
		}
		st, err := m.client.Patroni(ctx)
		if err != nil || st.State != "running" || st.Patroni.Scope != testScope || st.ServerVersion/10000 != 15 {
			t.Errorf("GET /patroni on %s: %+v %v", m.name, st, err)
		}
	}
	// WaitStarted reported progress and, at debug, Patroni's own log lines.
	for _, want := range []string{"INFO waiting for Patroni to be ready", "INFO Patroni is ready", "DEBUG 20", "INFO: "} {
		if !strings.Contains(h.startLog.String(), want) {
			t.Errorf("start log lacks %q:\n%s", want, h.startLog.String())
		}
	}
	cfg, err := h.members[0].client.Config(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if cfg["ttl"] != float64(testTimings.TTL) || cfg["loop_wait"] != float64(testTimings.LoopWait) {
		t.Errorf("dynamic config %v does not hold the bootstrap timings", cfg)
	}
}

// TestClusterWideParameterReachesBothMembers: PATCH /config of a
// cluster-wide (postmaster) parameter, then a restart of each member through
// the REST API, shows the new value on both.
func TestClusterWideParameterReachesBothMembers(t *testing.T) {
	h := clusterEnv(t)
	ctx := context.Background()
	c := h.members[0].client
	want := "128"
	if err := c.SetClusterParameters(ctx, map[string]*string{"max_locks_per_transaction": &want}); err != nil {
		t.Fatal(err)
	}
	if err := poll(30*time.Second, func() error {
		cl, err := c.Cluster(ctx)
		if err != nil {
			return err
		}
		for _, m := range cl.Members {
			if !m.PendingRestart {
				return errors.New(m.Name + " has no pending restart yet")
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	cl, err := c.Cluster(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// Replica first: a hot standby needs max_locks_per_transaction >= the primary's.
	leader, _ := cl.Leader()
	var order []*testMember
	for _, m := range cl.Members {
		if m.Name != leader.Name {
			order = append(order, h.member(m.Name))
		}
	}
	order = append(order, h.member(leader.Name))
	for _, m := range order {
		rctx, cancel := context.WithTimeout(ctx, 60*time.Second)
		msg, err := m.client.Restart(rctx, RestartRequest{RestartPending: true})
		cancel()
		if err != nil {
			t.Fatalf("restart %s: %v", m.name, err)
		}
		t.Logf("restart %s: %s", m.name, msg)
		if got := show(t, h, m, "max_locks_per_transaction"); got != want {
			t.Errorf("%s: max_locks_per_transaction = %s, want %s", m.name, got, want)
		}
	}
	if err := h.waitHealthy(ctx); err != nil {
		t.Fatal(err)
	}

	bad := "10"
	if err := c.SetClusterParameters(ctx, map[string]*string{"max_connections": &bad}); err == nil || !strings.Contains(err.Error(), ">= 25") {
		t.Errorf("a value Patroni would ignore was sent: %v", err)
	}
}

// show runs SHOW name on m's PostgreSQL as the superuser, over TCP to its
// connect address.
func show(t *testing.T, h *testHarness, m *testMember, name string) string {
	t.Helper()
	host, port, _ := net.SplitHostPort(m.cfg.PostgreSQL.ConnectAddress)
	cc, err := pgx.ParseConfig("dbname=postgres user=" + DefaultSuperuser + " host=" + host + " port=" + port + " connect_timeout=5")
	if err != nil {
		t.Fatal(err)
	}
	cc.Password = h.creds.Superuser.Reveal()
	var v string
	if err := poll(30*time.Second, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		conn, err := pgx.ConnectConfig(ctx, cc)
		if err != nil {
			return err
		}
		defer conn.Close(ctx)
		return conn.QueryRow(ctx, "SHOW "+pgx.Identifier{name}.Sanitize()).Scan(&v)
	}); err != nil {
		t.Fatalf("SHOW %s on %s: %v", name, m.name, err)
	}
	return v
}

func TestPauseResume(t *testing.T) {
	h := clusterEnv(t)
	ctx := context.Background()
	c := h.members[1].client
	if err := c.Pause(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Resume(context.Background()) })
	if cl, err := c.Cluster(ctx); err != nil || !cl.Pause {
		t.Fatalf("after pause: %+v %v", cl, err)
	}
	wctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	if err := c.WaitPaused(wctx, true); err != nil {
		t.Fatal(err)
	}
	for _, m := range h.members {
		if st, err := m.client.Patroni(ctx); err != nil || !st.Pause {
			t.Errorf("%s: GET /patroni %+v %v", m.name, st, err)
		}
	}
	if err := c.Resume(ctx); err != nil {
		t.Fatal(err)
	}
	if cl, err := c.Cluster(ctx); err != nil || cl.Pause {
		t.Fatalf("after resume: %+v %v", cl, err)
	}
}

func TestSwitchover(t *testing.T) {
	h := clusterEnv(t)
	ctx := context.Background()
	if err := h.waitHealthy(ctx); err != nil {
		t.Fatal(err)
	}
	c := h.members[0].client
	cl, err := c.Cluster(ctx)
	if err != nil {
		t.Fatal(err)
	}
	leader, _ := cl.Leader()
	var candidate string
	for _, m := range cl.Members {
		if m.Name != leader.Name {
			candidate = m.Name
		}
	}

	// Errors carry Patroni's answer.
	_, err = c.Switchover(ctx, leader.Name, "nosuchnode")
	var serr *StatusError
	if !errors.As(err, &serr) || serr.Code != 412 || !strings.Contains(err.Error(), "candidate does not exists") {
		t.Errorf("switchover to a missing node: %v", err)
	}
	_, err = h.member(leader.Name).client.Reinitialize(ctx, false)
	if !errors.As(err, &serr) || serr.Code != 503 || !strings.Contains(err.Error(), "leader") {
		t.Errorf("reinitialize of the leader: %v", err)
	}

	msg, err := c.Switchover(ctx, leader.Name, candidate)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("switchover: %s", msg)
	if err := poll(60*time.Second, func() error {
		cl, err := c.Cluster(ctx)
		if err != nil {
			return err
		}
		if l, ok := cl.Leader(); !ok || l.Name != candidate {
			return errors.New("leader is not " + candidate + " yet")
		}
		return h.healthy(ctx)
	}); err != nil {
		t.Fatal(err)
	}
}

// TestLocalParameterReachesItsMember: a member's own parameter, written to
// its YAML and applied by POST /reload, changes that member only.
func TestLocalParameterReachesItsMember(t *testing.T) {
	h := clusterEnv(t)
	ctx := context.Background()
	m, other := h.members[0], h.members[1]
	before := show(t, h, other, "work_mem")
	v := "12MB"
	changed, err := SetLocalParameters(m.yaml, map[string]*string{"work_mem": &v})
	if err != nil || len(changed) != 1 {
		t.Fatalf("changed %v: %v", changed, err)
	}
	t.Cleanup(func() {
		SetLocalParameters(m.yaml, map[string]*string{"work_mem": nil})
		m.client.Reload(context.Background())
	})
	if err := m.client.Reload(ctx); err != nil {
		t.Fatal(err)
	}
	if err := poll(20*time.Second, func() error {
		if got := show(t, h, m, "work_mem"); got != v {
			return errors.New("work_mem is still " + got)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if got := show(t, h, other, "work_mem"); got != before {
		t.Errorf("%s: work_mem changed to %s", other.name, got)
	}

	info, err := Describe(ctx, m.cfg, m.client)
	if err != nil || info.Node != m.name || info.Cluster != testScope || info.PostgreSQL.ConnectHost != testHost || len(info.ClusterMembers) != 2 {
		t.Errorf("Describe: %+v %v", info, err)
	}
}

func TestDCSStateAndPurge(t *testing.T) {
	h := clusterEnv(t)
	ctx := context.Background()
	cfg := h.members[0].cfg
	st, err := ReadDCSState(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	cl, err := h.members[0].client.Cluster(ctx)
	if err != nil {
		t.Fatal(err)
	}
	leader, _ := cl.Leader()
	if !st.Initialized || st.Leader != leader.Name || strings.Join(st.Active(""), ",") != "pg1,pg2" || len(st.Active("pg1")) != 1 {
		t.Errorf("DCS state %+v, leader per REST %s", st, leader.Name)
	}
	if err := CheckDCSReachable(ctx, cfg, time.Second); err != nil {
		t.Error(err)
	}

	// Purge another cluster's keys: this cluster's stay.
	other := *cfg
	other.Scope = "purge-me"
	for _, k := range []string{"initialize", "leader", "members/x", "config"} {
		etcdPut(t, h, clusterPrefix("", other.Scope)+k, `{"state":"stopped"}`)
	}
	etcdPut(t, h, "/service/purge-me-not/initialize", "v") // same prefix without the slash
	if st, err := ReadDCSState(ctx, &other); err != nil || len(st.Members) != 1 || st.Members[0].State != "stopped" || len(st.Active("")) != 0 {
		t.Errorf("a stopped member: %+v %v", st, err)
	}
	n, err := PurgeDCS(ctx, &other)
	if err != nil || n != 4 {
		t.Fatalf("purged %d: %v", n, err)
	}
	if st, err := ReadDCSState(ctx, &other); err != nil || st.Initialized || len(st.Members) != 0 {
		t.Errorf("after purge: %+v %v", st, err)
	}
	other.Scope = "purge-me-not"
	if st, err := ReadDCSState(ctx, &other); err != nil || !st.Initialized {
		t.Errorf("a neighbour cluster was purged: %+v %v", st, err)
	}
	if st, err := ReadDCSState(ctx, cfg); err != nil || !st.Initialized {
		t.Errorf("the running cluster lost its keys: %+v %v", st, err)
	}

	// Reset keeps the cluster's configuration only.
	other.Scope = "reset-me"
	for _, k := range []string{"initialize", "leader", "members/x", "history", "status", "config"} {
		etcdPut(t, h, clusterPrefix("", other.Scope)+k, `{"ttl":30}`)
	}
	if n, err := ResetDCS(ctx, &other); err != nil || n != 5 {
		t.Fatalf("reset %d: %v", n, err)
	}
	g, err := dcsGateway(Etcd3{Hosts: []string{h.etcdHost}}, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	p := clusterPrefix("", other.Scope)
	kept, err := g.Range(ctx, p, false)
	if err != nil {
		t.Fatal(err)
	}
	if len(kept) != 1 || string(kept[0].Key) != p+"config" || string(kept[0].Value) != `{"ttl":30}` {
		t.Errorf("after reset: %+v", kept)
	}
	// Without a configuration, every key goes.
	etcdPut(t, h, p+"initialize", "1")
	if _, err := PurgeDCS(ctx, &other); err != nil {
		t.Fatal(err)
	}
	etcdPut(t, h, p+"initialize", "1")
	if n, err := ResetDCS(ctx, &other); err != nil || n != 1 {
		t.Errorf("reset without config: %d %v", n, err)
	}

	down := *cfg
	port, _ := freePort("127.0.0.1")
	down.Etcd3.Hosts = []string{"127.0.0.1:" + strconv.Itoa(port)}
	if err := CheckDCSReachable(ctx, &down, time.Second); err == nil || !strings.Contains(err.Error(), "connection refused") {
		t.Errorf("an unreachable DCS: %v", err)
	}
	if _, err := ReadDCSState(ctx, &down); err == nil || !strings.Contains(err.Error(), "no DCS endpoint answers") {
		t.Errorf("an unreachable DCS: %v", err)
	}
}

func etcdPut(t *testing.T, h *testHarness, key, value string) {
	t.Helper()
	g, err := dcsGateway(Etcd3{Hosts: []string{h.etcdHost}}, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	var out map[string]any
	if err := g.Call(context.Background(), "/v3/kv/put", map[string][]byte{"key": []byte(key), "value": []byte(value)}, &out); err != nil {
		t.Fatal(err)
	}
}

// TestFailoverAfterKill: SIGKILL of the leader's Patroni and postmaster
// promotes the replica once the leader key expires; restarted, the old
// leader rejoins as a replica (pg_rewind) and streams again.
func TestFailoverAfterKill(t *testing.T) {
	h := clusterEnv(t)
	ctx := context.Background()
	if err := h.waitHealthy(ctx); err != nil {
		t.Fatal(err)
	}
	cl, err := h.members[0].client.Cluster(ctx)
	if err != nil {
		t.Fatal(err)
	}
	l, _ := cl.Leader()
	old := h.member(l.Name)
	var survivor *testMember
	for _, m := range h.members {
		if m != old {
			survivor = m
		}
	}
	pm := postmasterPID(old.cfg.PostgreSQL.DataDir)
	if pm == 0 {
		t.Fatal("no postmaster for the leader")
	}
	if err := syscall.Kill(old.cmd.Process.Pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	syscall.Kill(pm, syscall.SIGKILL)
	<-old.done

	// ttl 20: the survivor takes over within about ttl + a loop.
	if err := poll(60*time.Second, func() error {
		st, err := survivor.client.Patroni(ctx)
		if err != nil {
			return err
		}
		if st.Role != "master" && st.Role != "primary" {
			return errors.New(survivor.name + " is still " + st.Role)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}

	if err := h.start(old); err != nil {
		t.Fatal(err)
	}
	wctx, cancel := context.WithTimeout(ctx, 90*time.Second)
	defer cancel()
	if err := h.waitHealthy(wctx); err != nil {
		t.Fatal(err)
	}
	if cl, err := survivor.client.Cluster(ctx); err != nil {
		t.Fatal(err)
	} else if l, _ := cl.Leader(); l.Name != survivor.name || l.Timeline < 2 {
		t.Errorf("after rejoin the leader is %+v", l)
	}
	log, _ := os.ReadFile(old.cfg.Log.File())
	if !strings.Contains(string(log), "running pg_rewind from") {
		t.Errorf("%s did not rejoin with pg_rewind", old.name)
	}
}
