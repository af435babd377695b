package patroni

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestClusterListFromPatroniJSON(t *testing.T) {
	// GET /cluster as Patroni 3.0.2 sends it (members sorted by name).
	body := `{"members": [
	 {"name": "pg1", "role": "leader", "state": "running", "api_url": "http://127.0.1.1:8008/patroni", "host": "127.0.1.1", "port": 5432, "timeline": 2},
	 {"name": "pg2", "role": "replica", "state": "running", "api_url": "http://127.0.1.1:8009/patroni", "host": "127.0.1.1", "port": 5433, "timeline": 2, "lag": 3670016},
	 {"name": "pg3", "role": "replica", "state": "stopped", "api_url": "http://127.0.1.1:8010/patroni", "host": "127.0.1.1", "port": 5434, "lag": "unknown", "pending_restart": true}
	], "pause": true}`
	var cl Cluster
	if err := json.Unmarshal([]byte(body), &cl); err != nil {
		t.Fatal(err)
	}
	if l, ok := cl.Leader(); !ok || l.Name != "pg1" || !cl.Pause || !cl.Members[2].PendingRestart {
		t.Fatalf("decoded %+v", cl)
	}
	got, _ := json.Marshal(cl.List())
	want := `[{"name":"pg1","host":"127.0.1.1","port":5432,"role":"leader","state":"running","api_url":"http://127.0.1.1:8008/patroni","timeline":2,"lag_bytes":null,"pending_restart":false},` +
		`{"name":"pg2","host":"127.0.1.1","port":5433,"role":"replica","state":"running","api_url":"http://127.0.1.1:8009/patroni","timeline":2,"lag_bytes":3670016,"pending_restart":false},` +
		`{"name":"pg3","host":"127.0.1.1","port":5434,"role":"replica","state":"stopped","api_url":"http://127.0.1.1:8010/patroni","timeline":0,"lag_bytes":null,"pending_restart":true}]`
	if string(got) != want {
		t.Errorf("list JSON\n got %s\nwant %s", got, want)
	}
	// Members re-encode the lag as Patroni sent it.
	m, _ := json.Marshal(cl.Members[1:])
	if !strings.Contains(string(m), `"lag":3670016`) || !strings.Contains(string(m), `"lag":"unknown"`) {
		t.Errorf("members JSON %s", m)
	}
}

func TestRole(t *testing.T) {
	for in, want := range map[string]string{"master": "leader", "primary": "leader", "leader": "leader", "replica": "replica",
		"sync_standby": "sync_standby", "standby_leader": "standby_leader"} {
		if got := Role(in); got != want {
			t.Errorf("Role(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestSetLocalParameters(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "pg1.yaml")
	if err := New(goldenSpec()).WriteFile(path, nil); err != nil {
		t.Fatal(err)
	}
	v := "12MB"
	changed, err := SetLocalParameters(path, map[string]*string{"work_mem": &v, "shared_buffers": nil})
	if err != nil || strings.Join(changed, ",") != "shared_buffers,work_mem" {
		t.Fatalf("changed %v, err %v", changed, err)
	}
	c, err := ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, has := c.PostgreSQL.Parameters["shared_buffers"]; has || c.PostgreSQL.Parameters["work_mem"] != "12MB" {
		t.Errorf("parameters %v", c.PostgreSQL.Parameters)
	}
	if changed, err := SetLocalParameters(path, map[string]*string{"work_mem": &v}); err != nil || changed != nil {
		t.Errorf("no-op change: %v %v", changed, err)
	}
	before, _ := os.ReadFile(path)
	if _, err := SetLocalParameters(path, map[string]*string{"max_connections": &v}); err == nil || !strings.Contains(err.Error(), "cluster-wide") {
		t.Errorf("a cluster-wide parameter went to the local file: %v", err)
	}
	if after, _ := os.ReadFile(path); string(after) != string(before) {
		t.Error("a refused change touched the file")
	}
	bak, err := BackupFile(path, time.Date(2026, 11, 24, 6, 0, 0, 0, time.UTC))
	if err != nil || bak != path+".20261124T060000Z.bak" {
		t.Fatalf("backup %s %v", bak, err)
	}
	if fi, err := os.Stat(bak); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("backup mode: %v %v", fi, err)
	}
}
