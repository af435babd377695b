package patroni

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/pgherd/pgherd/pkg/logging"
)

var update = flag.Bool("update", false, "rewrite golden files")

// fixedCredentials are recognisable fake passwords, so tests can look for them.
var fixedCredentials = Credentials{
	Superuser: "su-SECRET-1", Replication: "repl-SECRET-2", Rewind: "rw-SECRET-3", RestAPI: "api-SECRET-4",
}

func goldenSpec() Spec {
	return Spec{
		Cluster: "main", Node: "pg1",
		RestAPIConnect: "127.0.1.1:8008",
		PGConnectHost:  "127.0.1.1", PGPort: 5432,
		DataDir: "/srv/pgsql/15/pg1/data", BinDir: "/usr/lib/postgresql/15/bin",
		SocketDir: "/run/pgherd", PgPass: "/etc/pgherd/patroni/15-pg1.pgpass", LogDir: "/var/log/pgherd/patroni/15-pg1",
		Etcd:          Etcd3{Hosts: []string{"127.0.0.1:2379"}},
		Timings:       Timings{TTL: 20, LoopWait: 2, RetryTimeout: 5},
		Parameters:    map[string]string{"max_connections": "200", "shared_buffers": "32MB", "wal_keep_size": "128MB"},
		Credentials:   fixedCredentials,
		DataChecksums: true,
	}
}

func TestMarshalGolden(t *testing.T) {
	cfg := New(goldenSpec())
	got, err := cfg.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	again, _ := cfg.Marshal()
	if !bytes.Equal(got, again) {
		t.Fatal("two Marshal calls of the same Config differ")
	}
	golden := filepath.Join("testdata", "pg1.yaml")
	if *update {
		if err := os.WriteFile(golden, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("generated YAML differs from %s (go test -update rewrites it):\n%s", golden, got)
	}
	if err := cfg.Validate(); err != nil {
		t.Errorf("the golden config does not pass Validate: %v", err)
	}
}

// TestMarshalTypes reads the YAML back the way Patroni (PyYAML, YAML 1.1)
// would type it: "on"/"off" must stay strings, numbers numbers.
func TestMarshalTypes(t *testing.T) {
	b, err := New(goldenSpec()).Marshal()
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`wal_log_hints: "on"`, `mode: "off"`, "ttl: 20", "use_pg_rewind: true", "- data-checksums"} {
		if !bytes.Contains(b, []byte(want)) {
			t.Errorf("YAML lacks %q", want)
		}
	}
	var m map[string]any
	if err := yaml.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	dcs := m["bootstrap"].(map[string]any)["dcs"].(map[string]any)
	params := dcs["postgresql"].(map[string]any)["parameters"].(map[string]any)
	if params["max_connections"] != "200" || params["wal_keep_size"] != "128MB" {
		t.Errorf("cluster-wide parameters not routed to bootstrap.dcs: %v", params)
	}
	local := m["postgresql"].(map[string]any)["parameters"].(map[string]any)
	if _, ok := local["max_connections"]; ok || local["shared_buffers"] != "32MB" {
		t.Errorf("local parameters wrong: %v", local)
	}
}

func TestWriteFileIsAtomicAnd0600(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "pg1.yaml")
	cfg := New(goldenSpec())
	if err := os.WriteFile(path, []byte("old"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := cfg.WriteFile(path, nil); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("mode %04o, want 0600", fi.Mode().Perm())
	}
	got, _ := os.ReadFile(path)
	want, _ := cfg.Marshal()
	if !bytes.Equal(got, want) {
		t.Error("file content differs from Marshal")
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("temporary files left behind: %v", entries)
	}
	if err := cfg.WriteFile(filepath.Join(dir, "missing", "x.yaml"), nil); err == nil {
		t.Error("writing into a missing directory succeeded")
	}
}

func TestSecretsNeverPrinted(t *testing.T) {
	cfg := New(goldenSpec())
	var logged bytes.Buffer
	logging.New(&logged, slog.LevelDebug).Info("config", "cfg", cfg, "pw", cfg.PostgreSQL.Authentication.Superuser.Password)
	js, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	shown := map[string]string{
		"%v": fmt.Sprintf("%v", cfg), "%+v": fmt.Sprintf("%+v", cfg), "%#v": fmt.Sprintf("%#v", *cfg),
		"json": string(js), "log": logged.String(), "credentials %v": fmt.Sprint(fixedCredentials),
	}
	for how, s := range shown {
		for _, pw := range fixedCredentials.all() {
			if strings.Contains(s, pw) {
				t.Errorf("%s shows password %s: %s", how, pw, s)
			}
		}
	}
	if !strings.Contains(string(js), masked) {
		t.Errorf("JSON does not mask passwords: %s", js)
	}
	y, _ := cfg.Marshal()
	for _, pw := range fixedCredentials.all() {
		if !bytes.Contains(y, []byte(pw)) {
			t.Errorf("YAML for Patroni lacks password %s", pw)
		}
	}
}

func TestPgHBA(t *testing.T) {
	hba := New(goldenSpec()).Bootstrap.PgHBA
	for _, want := range []string{
		"local all postgres scram-sha-256",
		"host all postgres 127.0.0.1/32 scram-sha-256",
		"host all postgres samehost scram-sha-256",
		"host all postgres 127.0.1.1/32 scram-sha-256",
		"host replication replicator samenet scram-sha-256",
		"host postgres rewinder samenet scram-sha-256",
	} {
		if !contains(hba, want) {
			t.Errorf("pg_hba lacks %q: %q", want, hba)
		}
	}
	s := goldenSpec()
	s.Peers = []string{"10.0.0.0/24"}
	if hba := New(s).Bootstrap.DCS.PostgreSQL.PgHBA; !contains(hba, "host replication replicator 10.0.0.0/24 scram-sha-256") {
		t.Errorf("peers not used: %q", hba)
	}
}

// pg_hba has one source, the cluster-wide configuration: a member's own
// postgresql.pg_hba would override it (and 'pgherd pghba' on the cluster
// would change nothing there), so a new member's YAML holds none.
func TestPgHBAIsClusterWide(t *testing.T) {
	cfg := New(goldenSpec())
	if len(cfg.PostgreSQL.PgHBA) != 0 {
		t.Errorf("member YAML holds postgresql.pg_hba: %q", cfg.PostgreSQL.PgHBA)
	}
	if !contains(cfg.Bootstrap.DCS.PostgreSQL.PgHBA, "local all all peer") {
		t.Errorf("bootstrap.dcs.postgresql.pg_hba lacks the rules: %q", cfg.Bootstrap.DCS.PostgreSQL.PgHBA)
	}
	y, _ := cfg.Marshal()
	if bytes.Contains(y, []byte("    pg_hba: []")) {
		t.Errorf("YAML holds an empty pg_hba list, which would override the cluster's:\n%s", y)
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func TestReadFileRoundTrip(t *testing.T) {
	path := filepath.Join(t.TempDir(), "pg1.yaml")
	s := goldenSpec()
	s.ReplicationSSLCert, s.ReplicationSSLKey = "/etc/ssl/repl.crt", "/etc/ssl/repl.key"
	s.Tags.ReplicateFrom = "pg2"
	want := New(s)
	if err := want.WriteFile(path, nil); err != nil {
		t.Fatal(err)
	}
	got, err := ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("read back:\n%+v\nwrote:\n%+v", got, want)
	}
	if err := os.WriteFile(path, []byte("scope: main\nsurprise: 1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadFile(path); err == nil || !strings.Contains(err.Error(), "surprise") {
		t.Errorf("an unknown key passed: %v", err)
	}
}
