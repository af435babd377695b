package witness

import (
	"context"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/pgherd/pgherd/pkg/dcs"
	"github.com/pgherd/pgherd/pkg/dcs/server"
	"github.com/pgherd/pgherd/pkg/service"
)

var pgherdBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "witness-bin-")
	if err != nil {
		panic(err)
	}
	pgherdBin = filepath.Join(dir, "pgherd")
	if out, err := exec.Command("go", "build", "-o", dir+"/", "github.com/pgherd/pgherd/cmd/pgherd", "github.com/pgherd/pgherd/cmd/pgherd-dcs", "github.com/pgherd/pgherd/cmd/pgherd-supervise").CombinedOutput(); err != nil {
		os.RemoveAll(dir)
		panic("building pgherd and pgherd-dcs: " + err.Error() + "\n" + string(out))
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// dataMember starts an in-process data member on 127.0.0.1, with
// certificates of env's cluster CA (made with the first member, as on a
// data member's host, with the administrator's credential).
func dataMember(t *testing.T, env *Env, name, zone string, join ...string) *server.Server {
	t.Helper()
	pki := env.Local.PKI()
	if !pki.Exists() {
		if err := pki.Create(name); err != nil {
			t.Fatal(err)
		}
		if err := env.Local.IssueAdmin(); err != nil {
			t.Fatal(err)
		}
	}
	dir := env.Local.TLSDir(name)
	if err := pki.IssueMember(dir, name, dcs.RoleData, []string{"127.0.0.1"}, []string{"127.0.0.1"}); err != nil {
		t.Fatal(err)
	}
	peer, client := dcs.MemberTLS(dir)
	s, err := server.Start(context.Background(), dcs.Config{Name: name, Role: dcs.RoleData, Zone: zone,
		DataDir: filepath.Join(t.TempDir(), name), ListenPeer: "127.0.0.1:0", ListenClient: "127.0.0.1:0",
		Join: join, HeartbeatTimeout: 500 * time.Millisecond, PeerTLS: peer, ClientTLS: client})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// setUpHere writes the configuration of data member s on env's host,
// which makes it a data member's host, where the CA stays when a witness
// there is removed (dcs.Local.DropTrust).
func setUpHere(t *testing.T, env *Env, s *server.Server, name string) {
	t.Helper()
	client := s.ClientURL()[strings.Index(s.ClientURL(), "://")+3:]
	raw := "name: " + name + "\nrole: data\nlisten_peer: " + s.PeerAddr() + "\nlisten_client: " + client + "\ndata_dir: " + filepath.Join(t.TempDir(), name) + "\n"
	if err := os.WriteFile(env.Local.ConfigFile(name), []byte(raw), 0o600); err != nil {
		t.Fatal(err)
	}
}

func testEnv(t *testing.T) *Env {
	prefix := t.TempDir()
	svc := service.NewProcess(service.Config{RunDir: filepath.Join(prefix, "run"), StopTimeout: 10 * time.Second,
		Supervisor: filepath.Join(filepath.Dir(pgherdBin), service.SupervisorName)})
	env := &Env{Local: &dcs.Local{Dir: filepath.Join(prefix, "dcs"), Exec: pgherdBin, Services: svc}}
	t.Cleanup(func() {
		// Stop any member a failed test left running, by its pidfile.
		local, _ := env.LocalMembers()
		for _, c := range local {
			env.Local.StopLocal(context.Background(), c.Name)
		}
	})
	return env
}

func suffrage(ms []dcs.MemberStatus, name string) string {
	for _, m := range ms {
		if m.Name == name {
			return m.Suffrage
		}
	}
	return "absent"
}

func ctxT(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// TestWitnessLifecycle adds a witness beside two data members, checks
// that it votes, that a second witness stays a nonvoter, that status and
// list report it, that a removal costing the quorum is refused and
// changes nothing, and that remove deletes everything.
func TestWitnessLifecycle(t *testing.T) {
	ctx := ctxT(t, 3*time.Minute)
	env := testEnv(t)
	d1 := dataMember(t, env, "d1", "z1")
	setUpHere(t, env, d1, "d1")
	d2 := dataMember(t, env, "d2", "z2", d1.PeerAddr())
	waitZones(t, env, d1.PeerAddr(), 2)

	res, err := Add(ctx, env, AddRequest{Name: "w1", Peer: d1.PeerAddr(), ListenPeer: "127.0.0.1:0", ListenClient: "127.0.0.1:0", Zone: "z3"})
	if err == nil {
		t.Fatalf("port 0 accepted: the advertised address would be unusable")
	}
	res, err = Add(ctx, env, AddRequest{Name: "w1", Peer: d1.PeerAddr(), ListenPeer: freeAddr(t), ListenClient: freeAddr(t), Zone: "z3"})
	if err != nil {
		t.Fatal(err)
	}
	if got := suffrage(res.Members, "w1"); got != "voter" || len(res.Warnings) != 0 {
		t.Fatalf("w1 is %s (warnings %v): %+v", got, res.Warnings, res.Members)
	}
	fi, err := os.Stat(env.Local.ConfigFile("w1"))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("config file: %v %v", fi, err)
	}
	// The config records the cluster, so that an emptied member cannot
	// bootstrap another (pkg/dcs/server's TestEmptied* tests).
	ac, err := dcs.NewAdminClient(d1.PeerAddr(), env.Creds())
	if err != nil {
		t.Fatal(err)
	}
	d1Info, err := ac.Status(ctx)
	ac.Close()
	if wcfg, err2 := dcs.LoadConfig(env.Local.ConfigFile("w1")); err != nil || err2 != nil || wcfg.ClusterID == "" || wcfg.ClusterID != d1Info.ClusterID {
		t.Fatalf("w1's config records cluster %q, d1 is in %q (%v, %v)", wcfg.ClusterID, d1Info.ClusterID, err, err2)
	}

	res, err = Add(ctx, env, AddRequest{Name: "w2", Peer: d2.PeerAddr(), ListenPeer: freeAddr(t), ListenClient: freeAddr(t), Zone: "z4"})
	if err != nil {
		t.Fatal(err)
	}
	if got := suffrage(res.Members, "w2"); got != "nonvoter" || len(res.Warnings) != 1 || !strings.Contains(res.Warnings[0], "joins as a nonvoter") {
		t.Fatalf("second witness: %s, warnings %v", got, res.Warnings)
	}
	ws, err := List(ctx, env, "")
	if err != nil || len(ws) != 2 || ws[0].Role != "witness" {
		t.Fatalf("list: %+v %v", ws, err)
	}
	st, err := GetStatus(ctx, env, "w1")
	if err != nil || st.Suffrage != "voter" || st.Leader == "" || st.Lag > 64 || !st.Healthy {
		t.Fatalf("status: %+v %v", st, err)
	}
	if err := Remove(ctx, env, "w2", false); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(env.Local.DefaultDataDir("w2")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("w2's data dir is still there: %v", err)
	}
	if _, ok := env.Local.AdminTLS(); !ok || !env.Local.PKI().Exists() {
		t.Fatalf("removing a witness took the CA or the administrator's credential from data member d1's host")
	}

	// d2 down: removing w1 would leave d1 alone of two voters.
	d2.Close()
	err = Remove(ctx, env, "w1", false)
	if err == nil || !strings.Contains(err.Error(), "1 reachable voters of 2") {
		t.Fatalf("removal without quorum: %v", err)
	}
	if _, err := os.Stat(env.Local.ConfigFile("w1")); err != nil {
		t.Fatalf("refused removal deleted the config: %v", err)
	}
	ms, err := Members(ctx, env, d1.PeerAddr())
	if err != nil || suffrage(ms, "w1") != "voter" {
		t.Fatalf("after the refused removal: %+v %v", ms, err)
	}

	// The witness reads Patroni's keys; here they point at closed ports.
	admin, _ := env.Local.AdminClientTLS()
	tc, err := admin.Client()
	if err != nil {
		t.Fatal(err)
	}
	cl, err := clientv3.New(clientv3.Config{Endpoints: []string{d1.ClientURL()}, DialTimeout: 3 * time.Second, TLS: tc})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	dead := freeAddr(t)
	if _, err := cl.Put(ctx, "/service/c1/members/pg1", `{"conn_url":"postgres://`+dead+`/postgres","api_url":"http://`+dead+`/patroni","state":"running","role":"master","timeline":1}`); err != nil {
		t.Fatal(err)
	}
	if _, err := cl.Put(ctx, "/service/c1/leader", "pg1"); err != nil {
		t.Fatal(err)
	}
	h, err := Check(ctx, env, "w1", "")
	if err != nil {
		t.Fatal(err)
	}
	if len(h.Clusters) != 1 || h.Clusters[0].Leader != "pg1" || h.Clusters[0].Healthy != 0 || h.Clusters[0].Total != 1 ||
		h.Clusters[0].Members[0].APIOK || h.Clusters[0].Members[0].PGOK {
		t.Fatalf("check: %+v", h)
	}
}

// TestAddRefusals: every refused add leaves nothing behind.
func TestAddRefusals(t *testing.T) {
	ctx := ctxT(t, time.Minute)
	env := testEnv(t)
	d1 := dataMember(t, env, "d1", "z1")
	dataMember(t, env, "d2", "", d1.PeerAddr())
	before, _ := os.ReadDir(env.Local.Dir)
	waitZones(t, env, d1.PeerAddr(), 1)
	cases := []struct {
		req  AddRequest
		want string
	}{
		{AddRequest{Name: "w", Peer: freeAddr(t)}, "no DCS member reachable"},
		{AddRequest{Name: "w", Peer: strings.TrimPrefix(d1.ClientURL(), "https://")}, "answers the etcd API"},
		{AddRequest{Name: "d2", Peer: d1.PeerAddr()}, "already has a data member named \"d2\""},
		{AddRequest{Name: "w", Peer: d1.PeerAddr(), Zone: "z1"}, "would not add a failure domain"},
		{AddRequest{Name: "bad/name", Peer: d1.PeerAddr()}, "member name"},
	}
	for _, c := range cases {
		c.req.ListenPeer, c.req.ListenClient = freeAddr(t), freeAddr(t)
		_, err := Add(ctx, env, c.req)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: want %q, got %v", c.req.Name, c.want, err)
		}
	}
	if ents, _ := os.ReadDir(env.Local.Dir); len(ents) != len(before) {
		t.Fatalf("refused adds left %v in the prefix", ents)
	}
	// Profile testing: the same zone is a warning, and unset zones too.
	res, err := Add(ctx, env, AddRequest{Name: "w", Peer: d1.PeerAddr(), Zone: "z1", Profile: "testing", ListenPeer: freeAddr(t), ListenClient: freeAddr(t)})
	if err != nil {
		t.Fatal(err)
	}
	if w := strings.Join(res.Warnings, "\n"); !strings.Contains(w, "would not add a failure domain") || !strings.Contains(w, "cannot be checked") {
		t.Fatalf("warnings: %v", res.Warnings)
	}
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// waitZones waits until n members have published their zone (members
// publish their metadata just after they start).
func waitZones(t *testing.T, env *Env, peer string, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		ms, err := Members(context.Background(), env, peer)
		zoned := 0
		for _, m := range ms {
			if m.Zone != "" {
				zoned++
			}
		}
		if err == nil && zoned == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("members did not publish their zones: %+v %v", ms, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
