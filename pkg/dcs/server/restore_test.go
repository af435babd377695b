package server

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/pgherd/pgherd/pkg/dcs"
)

// TestRestoreFromEtcdctlSnapshot saves a member's state with Debian's
// `etcdctl snapshot save`, starts a new member from that file alone and
// checks that it serves the same keys at the same revisions under a new
// cluster ID, accepts writes, and that another member joins it.
func TestRestoreFromEtcdctlSnapshot(t *testing.T) {
	if _, err := exec.LookPath("etcdctl"); err != nil {
		t.Skip("etcdctl is not installed")
	}
	old := newCluster(t, 1, nil)
	cl := old.client(old.servers[0].ClientURL())
	ctx := testCtx()
	lease := fillSample(t, cl)
	want := kvDump(t, cl)
	file := filepath.Join(t.TempDir(), "snap.db")
	etcdctlRun(t, "--endpoints", old.servers[0].ClientURL(), "snapshot", "save", file)
	oldID := old.servers[0].node.fsm.cluster()
	old.stopAll()

	c := &testCluster{t: t}
	t.Cleanup(c.stopAll)
	cfg := memberConfig(t, "r0")
	cfg.RestoreFrom = file
	c.add(cfg)
	c.waitVoters(1)
	rcl := c.client(c.servers[0].ClientURL())
	if got := kvDump(t, rcl); got != want {
		t.Fatalf("restored member serves\n%s\nwant\n%s", got, want)
	}
	waitFor(t, 10*time.Second, "a new cluster ID", func() bool { return c.servers[0].node.fsm.cluster() != 0 })
	if id := c.servers[0].node.fsm.cluster(); id == oldID {
		t.Fatalf("restored cluster kept the old cluster ID %x", id)
	}
	ttl, err := rcl.TimeToLive(ctx, lease)
	if err != nil || ttl.TTL <= 0 {
		t.Fatalf("lease after restore: %+v, %v", ttl, err)
	}
	put, err := rcl.Put(ctx, "/service/pg/after", "1")
	if err != nil {
		t.Fatal(err)
	}
	j := memberConfig(t, "r1")
	j.Join = []string{c.servers[0].PeerAddr()}
	c.add(j)
	c.waitVoters(2)
	jcl := c.client(c.servers[1].ClientURL())
	r, err := jcl.Get(ctx, "/service/pg/after")
	if err != nil || len(r.Kvs) != 1 || r.Kvs[0].ModRevision != put.Header.Revision {
		t.Fatalf("joined member reads %+v, %v", r, err)
	}
	// Restarted, the member starts from its data directory, not the file.
	os.Remove(file)
	c.stop(0)
	c.restart(0)
	c.waitVoters(2)
}

// TestRestoreRefusesBadSnapshots: a truncated snapshot and a file from
// another program are refused with one line, and the data directory is
// left as it was (empty).
func TestRestoreRefusesBadSnapshots(t *testing.T) {
	if _, err := exec.LookPath("etcdctl"); err != nil {
		t.Skip("etcdctl is not installed")
	}
	old := newCluster(t, 1, nil)
	dir := t.TempDir()
	good := filepath.Join(dir, "good.db")
	etcdctlRun(t, "--endpoints", old.servers[0].ClientURL(), "snapshot", "save", good)
	data, _ := os.ReadFile(good)
	truncated := filepath.Join(dir, "truncated.db")
	os.WriteFile(truncated, data[:len(data)-4096], 0o600)
	// Another program's file, even one with a valid digest at its end.
	other := bytes.Repeat([]byte("PGDMP"), 8192/5+1)[:8192]
	sum := sha256.Sum256(other)
	foreign := filepath.Join(dir, "foreign.db")
	os.WriteFile(foreign, append(other, sum[:]...), 0o600)
	text := filepath.Join(dir, "text")
	os.WriteFile(text, []byte("name: a\n"), 0o600)
	for name, file := range map[string]string{"truncated": truncated, "foreign": foreign, "text": text, "missing": filepath.Join(dir, "none")} {
		cfg := memberConfig(t, "r0")
		cfg.RestoreFrom = file
		s, err := Start(testCtx(), cfg)
		if err == nil {
			s.Close()
			t.Fatalf("%s: a member started from it", name)
		}
		if name != "missing" && !errors.Is(err, dcs.ErrBadSnapshot) {
			t.Errorf("%s: %v, want ErrBadSnapshot", name, err)
		}
		if !dcs.EmptyDir(cfg.DataDir) {
			t.Errorf("%s: data dir not left empty", name)
		}
		if code := checkSnapshotMain(file, &discard{}); code != 1 {
			t.Errorf("%s: --check-snapshot exit %d, want 1", name, code)
		}
	}
	if code := checkSnapshotMain(good, &discard{}); code != 0 {
		t.Errorf("--check-snapshot of a good snapshot: exit %d", code)
	}
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }
