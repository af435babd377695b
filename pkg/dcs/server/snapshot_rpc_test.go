package server

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/pgherd/pgherd/pkg/dcs"
)

func etcdctlRun(t *testing.T, args ...string) string {
	t.Helper()
	cmd := exec.Command("etcdctl", args...)
	cmd.Env = append(cmd.Environ(), "ETCDCTL_API=3")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("etcdctl %v: %v\n%s", args, err, out)
	}
	return string(out)
}

// kvDump renders every key with its value, revisions and version, and the
// current revision.
func kvDump(t *testing.T, cl *clientv3.Client) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	r, err := cl.Get(ctx, "", clientv3.WithPrefix())
	if err != nil {
		t.Fatal(err)
	}
	s := fmt.Sprintf("rev %d:", r.Header.Revision)
	for _, kv := range r.Kvs {
		s += fmt.Sprintf(" %s=%s(c%d m%d v%d l%v)", kv.Key, kv.Value, kv.CreateRevision, kv.ModRevision, kv.Version, kv.Lease != 0)
	}
	return s
}

// fillSample writes keys overwritten and deleted, and a key on a lease,
// ending with a deletion; it returns the lease.
func fillSample(t *testing.T, cl *clientv3.Client) clientv3.LeaseID {
	t.Helper()
	ctx := testCtx()
	for i := range 20 {
		if _, err := cl.Put(ctx, fmt.Sprintf("/service/pg/k%d", i%7), fmt.Sprint(i)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := cl.Delete(ctx, "/service/pg/k3"); err != nil {
		t.Fatal(err)
	}
	lease, err := cl.Grant(ctx, 300)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cl.Put(ctx, "/service/pg/leader", "m1", clientv3.WithLease(lease.ID)); err != nil {
		t.Fatal(err)
	}
	if _, err := cl.Delete(ctx, "/service/pg/k4"); err != nil { // the last revision is a deletion
		t.Fatal(err)
	}
	return lease.ID
}

// TestEtcdctlSnapshot saves a member's state with Debian's etcdctl 3.4,
// checks `etcdctl snapshot status` of the file, restores it with
// `etcdctl snapshot restore` and starts a real etcd on it: that etcd must
// serve the same keys at the same revisions, leases included.
func TestEtcdctlSnapshot(t *testing.T) {
	for _, p := range []string{"etcdctl", "etcd"} {
		if _, err := exec.LookPath(p); err != nil {
			t.Skip(p + " is not installed")
		}
	}
	c := newCluster(t, 1, nil)
	cl := c.client(c.servers[0].ClientURL())
	fillSample(t, cl)
	want := kvDump(t, cl)

	dir := t.TempDir()
	file := filepath.Join(dir, "snap.db")
	etcdctlRun(t, "--endpoints", c.servers[0].ClientURL(), "snapshot", "save", file)
	var st struct {
		Revision int64 `json:"revision"`
		TotalKey int   `json:"totalKey"`
	}
	out := etcdctlRun(t, "snapshot", "status", file, "-w", "json")
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		t.Fatalf("etcdctl snapshot status: %q: %v", out, err)
	}
	if rev := c.servers[0].node.fsm.store.Rev(); st.Revision != rev || st.TotalKey < 8 {
		t.Fatalf("etcdctl snapshot status: revision %d, %d keys; want revision %d and at least 8 keys", st.Revision, st.TotalKey, rev)
	}

	peer, client := "http://"+freePort(t), "http://"+freePort(t)
	data := filepath.Join(dir, "etcd")
	etcdctlRun(t, "snapshot", "restore", file, "--data-dir", data, "--name", "e0",
		"--initial-cluster", "e0="+peer, "--initial-advertise-peer-urls", peer)
	cmd := exec.Command("etcd", "--name", "e0", "--data-dir", data, "--listen-peer-urls", peer,
		"--initial-advertise-peer-urls", peer, "--listen-client-urls", client, "--advertise-client-urls", client,
		"--log-level", "error", "--logger", "zap")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	ecl, err := clientv3.New(clientv3.Config{Endpoints: []string{client}, DialTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer ecl.Close()
	var got string
	for deadline := time.Now().Add(30 * time.Second); ; {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		_, err := ecl.Get(ctx, "/none")
		cancel()
		if err == nil {
			got = kvDump(t, ecl)
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("etcd restored from the snapshot did not answer: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if got != want {
		t.Fatalf("etcd restored from `etcdctl snapshot save` of a member serves\n%s\nwant\n%s", got, want)
	}
	if err := dcs.CheckSnapshotFile(file); err != nil {
		t.Fatalf("etcdctl's snapshot file: %v", err)
	}
}

// TestSaveSnapshot fetches a member's snapshot as `pgherd dcs snapshot
// save` does: the file is 0600, complete (its digest checks), and
// etcdctl 3.4 reads it at the member's revision; a path that cannot be
// written leaves nothing behind.
func TestSaveSnapshot(t *testing.T) {
	if _, err := exec.LookPath("etcdctl"); err != nil {
		t.Skip("etcdctl is not installed")
	}
	c := newCluster(t, 1, nil)
	cl := c.client(c.servers[0].ClientURL())
	for i := range 50 {
		if _, err := cl.Put(testCtx(), fmt.Sprintf("/k%d", i), strings.Repeat("v", 2000)); err != nil {
			t.Fatal(err)
		}
	}
	dir := t.TempDir()
	file := filepath.Join(dir, "dcs.db")
	info, err := dcs.SaveSnapshot(testCtx(), c.servers[0].ClientURL(), dcs.TLSConfig{}, file)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(file)
	if err != nil || fi.Mode().Perm() != 0o600 || fi.Size() != info.Bytes || info.Bytes < 100_000 {
		t.Fatalf("snapshot file %v (%v), info %+v: want 0600 and the size reported", fi, err, info)
	}
	if rev := c.servers[0].node.fsm.store.Rev(); info.Revision != rev {
		t.Fatalf("revision %d reported, want %d", info.Revision, rev)
	}
	if err := dcs.CheckSnapshotFile(file); err != nil {
		t.Fatal(err)
	}
	if out := etcdctlRun(t, "snapshot", "status", file, "-w", "json"); !strings.Contains(out, fmt.Sprintf(`"revision":%d`, info.Revision)) {
		t.Fatalf("etcdctl snapshot status: %s", out)
	}
	if _, err := dcs.SaveSnapshot(testCtx(), c.servers[0].ClientURL(), dcs.TLSConfig{}, filepath.Join(dir, "missing", "x.db")); err == nil {
		t.Fatal("saved into a missing directory")
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 1 {
		t.Fatalf("%d files in the directory, want only dcs.db", len(ents))
	}
}

// TestPeriodicSnapshots runs a member that writes its snapshot every
// second and keeps two: after four, the directory holds exactly two complete
// snapshots of that member, the newest at the latest revision, and a
// file that is not one of them is left alone.
func TestPeriodicSnapshots(t *testing.T) {
	dir := t.TempDir()
	other := filepath.Join(dir, "m0-notes.txt")
	os.WriteFile(other, []byte("mine"), 0o600)
	c := newCluster(t, 1, func(cfg *dcs.Config) {
		cfg.Snapshots = dcs.SnapshotSchedule{Dir: dir, Interval: time.Second, Keep: 2}
	})
	cl := c.client(c.servers[0].ClientURL())
	if _, err := cl.Put(testCtx(), "/a", "1"); err != nil {
		t.Fatal(err)
	}
	snaps := func() []string {
		m, _ := filepath.Glob(filepath.Join(dir, "m0-*Z.db"))
		return m
	}
	seen := map[string]bool{}
	for deadline := time.Now().Add(20 * time.Second); len(seen) < 4; time.Sleep(100 * time.Millisecond) {
		for _, f := range snaps() {
			seen[f] = true
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d snapshots written in 20 s at an interval of 1 s", len(seen))
		}
	}
	c.stop(0) // waits for a snapshot under way and its clean-up
	got := snaps()
	if len(got) != 2 {
		t.Fatalf("snapshots %v, want 2", got)
	}
	for _, f := range got {
		if err := dcs.CheckSnapshotFile(f); err != nil {
			t.Fatal(err)
		}
		if fi, _ := os.Stat(f); fi.Mode().Perm() != 0o600 {
			t.Fatalf("%s has mode %v", f, fi.Mode())
		}
	}
	if _, err := os.Stat(other); err != nil {
		t.Fatalf("a file that is not a snapshot was removed: %v", err)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 3 {
		t.Fatalf("%d files in the directory, want the 2 snapshots and the notes", len(ents))
	}
}
