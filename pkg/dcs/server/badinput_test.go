package server

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pgherd/pgherd/pkg/dcs"
)

func wantErr(t *testing.T, err error, substr string) {
	t.Helper()
	if err == nil || !strings.Contains(err.Error(), substr) {
		t.Fatalf("error %v, want one containing %q", err, substr)
	}
}

func TestJoinThroughUnreachablePeer(t *testing.T) {
	dead := freePort(t) // nothing listens there
	cfg := memberConfig(t, "lost")
	cfg.Join = []string{dead}
	_, err := Start(context.Background(), cfg)
	wantErr(t, err, "no member reachable")
	entries, _ := os.ReadDir(cfg.DataDir)
	if len(entries) != 0 {
		t.Fatalf("a failed join left %d entries in the data dir", len(entries))
	}
}

func TestJoinRefusals(t *testing.T) {
	c := newCluster(t, 1, nil)
	ctx := context.Background()

	// The leader cannot reach the newcomer's advertised address: nothing
	// is added to the configuration.
	cfg := memberConfig(t, "ghost")
	cfg.Join = []string{c.servers[0].PeerAddr()}
	cfg.AdvertisePeer = freePort(t)
	_, err := Start(ctx, cfg)
	wantErr(t, err, "cannot reach the new member")
	ms, _ := c.servers[0].node.members(ctx)
	if len(ms) != 1 {
		t.Fatalf("a refused join left %d members", len(ms))
	}

	// A second member with an existing name but another address.
	cfg = memberConfig(t, "m0")
	cfg.Join = []string{c.servers[0].PeerAddr()}
	_, err = Start(ctx, cfg)
	wantErr(t, err, `a member named "m0" already exists`)

	// Joining again with the same name and address is a no-op.
	if err := c.servers[0].node.callLeader(ctx, dcs.RPCJoin, c.servers[0].node.self()); err != nil {
		t.Fatalf("idempotent join: %v", err)
	}
}

func TestAddressInUse(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	cfg := memberConfig(t, "busy")
	cfg.ListenClient = l.Addr().String()
	_, err = Start(context.Background(), cfg)
	wantErr(t, err, "address already in use")
}

func TestRefusedDataDirs(t *testing.T) {
	ctx := context.Background()
	foreign := memberConfig(t, "a")
	os.MkdirAll(foreign.DataDir, 0o700)
	os.WriteFile(filepath.Join(foreign.DataDir, "PG_VERSION"), []byte("15\n"), 0o600)
	_, err := Start(ctx, foreign)
	wantErr(t, err, "holds no pgherd dcs member")
	if _, err := os.Stat(filepath.Join(foreign.DataDir, "PG_VERSION")); err != nil {
		t.Fatal("the foreign data dir was touched")
	}

	// A real member's directory, started under another name, then with a
	// damaged log.
	cfg := memberConfig(t, "b")
	s, err := Start(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "leader", s.node.isLeader)
	if _, err := Start(ctx, cfg); err == nil || !strings.Contains(err.Error(), "in use by another running member") {
		t.Fatalf("a second start on a used data dir: %v", err)
	}
	s.Close()
	other := cfg
	other.Name = "c"
	_, err = Start(ctx, other)
	wantErr(t, err, `belongs to member "b"`)

	db := filepath.Join(cfg.DataDir, dcs.WALDir, "wal-meta.db")
	if err := os.WriteFile(db, []byte(strings.Repeat("garbage!", 1024)), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = Start(ctx, cfg)
	wantErr(t, err, "open raft log")
	if b, _ := os.ReadFile(db); !strings.HasPrefix(string(b), "garbage!") {
		t.Fatal("the damaged log was rewritten")
	}
}

func TestConfigValidation(t *testing.T) {
	for _, tc := range []struct {
		cfg  dcs.Config
		want string
	}{
		{dcs.Config{DataDir: "/d", ListenPeer: "a:1", ListenClient: "a:2"}, "name is required"},
		{dcs.Config{Name: "../x", DataDir: "/d", ListenPeer: "a:1", ListenClient: "a:2"}, `invalid member name "../x": use 1 to 32 letters`},
		{dcs.Config{Name: "n", Role: "boss", DataDir: "/d", ListenPeer: "a:1", ListenClient: "a:2"}, `role "boss"`},
		{dcs.Config{Name: "n", DataDir: "/d", ListenPeer: "nope", ListenClient: "a:2"}, "listen_peer"},
		{dcs.Config{Name: "n", DataDir: "/d", ListenPeer: "a:1", ListenClient: "a:2", PeerTLS: dcs.TLSConfig{Cert: "c"}}, "key is required"},
		{dcs.Config{Name: "n", DataDir: "/d", ListenPeer: "a:1", ListenClient: "a:2", QuotaBytes: dcs.MinQuotaBytes - 1}, "quota_bytes 8388607: want at least 8388608 (8 MiB"},
		{dcs.Config{Name: "n", DataDir: "/d", ListenPeer: "a:1", ListenClient: "a:2", HistoryLimit: -1}, "history_limit -1: want a number of revisions"},
	} {
		err := tc.cfg.Validate()
		wantErr(t, err, tc.want)
	}
	cfg := memberConfig(t, "wild")
	cfg.ListenPeer = "0.0.0.0:0"
	_, err := Start(context.Background(), cfg)
	wantErr(t, err, "set advertise_peer")
}
