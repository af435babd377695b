package patroni

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

func TestValidateTimings(t *testing.T) {
	cases := []struct {
		t    Timings
		want string // "" means valid
	}{
		{Timings{20, 2, 5}, ""},
		{Timings{30, 10, 10}, ""},
		{Timings{10, 1, 3}, ""}, // the fast profile: refused by the old 20 s floor
		{Timings{12, 2, 5}, ""},
		{Timings{9, 1, 3}, "ttl 9 is below pgherd's minimum of 10 seconds (Patroni's rule loop_wait + 2*retry_timeout <= ttl plus a measured margin): set ttl to 10 or more"},
		{Timings{20, 0, 5}, "loop_wait 0 is below pgherd's minimum of 1 second"},
		{Timings{20, 2, 2}, "retry_timeout 2 is below pgherd's minimum of 3 seconds"},
		{Timings{20, 10, 10}, "loop_wait + 2*retry_timeout = 10 + 2*10 = 30 exceeds ttl 20, breaking Patroni's rule loop_wait + 2*retry_timeout <= ttl"},
		{Timings{10, 2, 5}, "2 + 2*5 = 12 exceeds ttl 10"},
		{Timings{5, 3, 3}, "set ttl to 10 or more; loop_wait + 2*retry_timeout = 3 + 2*3 = 9 exceeds ttl 5"},
	}
	for _, c := range cases {
		err := ValidateTimings(c.t)
		switch {
		case c.want == "" && err != nil:
			t.Errorf("%+v: unexpected error %v", c.t, err)
		case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)):
			t.Errorf("%+v: error %v, want %q", c.t, err, c.want)
		case err != nil && strings.Count(err.Error(), "\n") != 0:
			t.Errorf("%+v: want one line, got %q", c.t, err)
		}
	}
}

func TestValidateRefusesLoopbackConnectAddresses(t *testing.T) {
	for _, host := range []string{"127.0.0.1", "localhost", "::1", "0.0.0.0", "*"} {
		s := goldenSpec()
		s.PGConnectHost = host
		s.PGListen = host
		err := New(s).Validate()
		if err == nil {
			t.Errorf("%s accepted as a connect address", host)
			continue
		}
		if msg := err.Error(); strings.Count(msg, "\n") != 0 ||
			!strings.Contains(msg, "Patroni's validator refuses "+host) || !strings.Contains(msg, "127.0.1.1") {
			t.Errorf("%s: want one line explaining the refusal and suggesting 127.0.1.1, got %q", host, msg)
		}
	}
}

func TestValidateListenMustServeConnectAddress(t *testing.T) {
	s := goldenSpec()
	s.RestAPIListen = "127.0.2.2:8008"
	s.PGListen = "127.0.1.1,127.0.2.2"
	err := New(s).Validate()
	if err == nil || !strings.Contains(err.Error(), "restapi.listen 127.0.2.2:8008 does not listen on the connect address's host 127.0.1.1") {
		t.Errorf("got %v", err)
	}
	if strings.Contains(err.Error(), "postgresql.listen") {
		t.Errorf("a listen list holding the connect host was refused: %v", err)
	}
	s = goldenSpec()
	s.RestAPIListen = "127.0.1.1:9000"
	if err := New(s).Validate(); err == nil || !strings.Contains(err.Error(), "different ports: use port 8008 in both") {
		t.Errorf("got %v", err)
	}
	s = goldenSpec()
	s.RestAPIListen = "0.0.0.0:8008"
	if err := New(s).Validate(); err != nil {
		t.Errorf("a wildcard listen address was refused: %v", err)
	}
}

func TestValidateFilesAndValues(t *testing.T) {
	s := goldenSpec()
	s.ReplicationSSLCert = "/nonexistent/repl.crt"
	s.Etcd.CACert = "/nonexistent/ca.crt"
	s.Parameters = map[string]string{"max_connections": "10"}
	s.Watchdog = "sometimes"
	err := New(s).Validate()
	if err == nil {
		t.Fatal("accepted")
	}
	for _, want := range []string{
		"etcd3.cacert: file /nonexistent/ca.crt does not exist",
		"postgresql.authentication.replication: give both an SSL certificate and its key, or neither",
		`max_connections = "10": Patroni ignores this value silently and keeps 100; use an integer >= 25`,
		`watchdog.mode "sometimes": use off, automatic or required`,
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
	cfg := New(goldenSpec())
	cfg.PostgreSQL.Parameters["wal_level"] = "logical"
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "postgresql.parameters.wal_level: Patroni ignores it") {
		t.Errorf("a cluster-wide parameter in the local section passed: %v", err)
	}
}

func TestClusterWideParameters(t *testing.T) {
	for _, p := range []string{"max_connections", "wal_level", "max_wal_senders", "max_locks_per_transaction",
		"max_worker_processes", "wal_keep_size", "wal_log_hints", "Max_Connections"} {
		if !IsClusterWide(p) {
			t.Errorf("%s is not cluster-wide", p)
		}
	}
	if IsClusterWide("work_mem") || IsClusterWide("shared_buffers") {
		t.Error("a local parameter is called cluster-wide")
	}
	for name, val := range map[string]string{"max_connections": "200", "wal_keep_size": "1GB", "wal_level": "logical",
		"track_commit_timestamp": "on", "work_mem": "anything"} {
		if err := CheckClusterWide(name, val); err != nil {
			t.Errorf("%s=%s refused: %v", name, val, err)
		}
	}
	for name, val := range map[string]string{"max_connections": "24", "wal_keep_size": "8MB", "wal_level": "minimal", "port": "5433"} {
		if err := CheckClusterWide(name, val); err == nil {
			t.Errorf("%s=%s accepted", name, val)
		}
	}
}

// TestClusterWideMatchesInstalledPatroni reads CMDLINE_OPTIONS from the
// Patroni installed on this machine, so the list cannot drift from it.
func TestClusterWideMatchesInstalledPatroni(t *testing.T) {
	const src = "/usr/lib/python3/dist-packages/patroni/postgresql/config.py"
	b, err := os.ReadFile(src)
	if err != nil {
		t.Skipf("Patroni's source is not installed: %v", err)
	}
	block := regexp.MustCompile(`(?s)CMDLINE_OPTIONS = CaseInsensitiveDict\(\{(.*?)\}\)`).FindSubmatch(b)
	if block == nil {
		t.Fatalf("no CMDLINE_OPTIONS in %s", src)
	}
	var names []string
	for _, m := range regexp.MustCompile(`'(\w+)': \(`).FindAllSubmatch(block[1], -1) {
		names = append(names, string(m[1]))
	}
	got := ClusterWideParameters()
	if strings.Join(sorted(names), ",") != strings.Join(got, ",") {
		t.Errorf("Patroni's CMDLINE_OPTIONS %v, ours %v", sorted(names), got)
	}
}

func sorted(s []string) []string {
	out := append([]string(nil), s...)
	for i := range out {
		for j := i + 1; j < len(out); j++ {
			if out[j] < out[i] {
				out[i], out[j] = out[j], out[i]
			}
		}
	}
	return out
}

func TestCredentialsFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "main.credentials")
	c1, created, err := LoadOrCreateCredentials(path, nil)
	if err != nil || !created {
		t.Fatalf("created=%v err=%v", created, err)
	}
	fi, _ := os.Stat(path)
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("mode %04o, want 0600", fi.Mode().Perm())
	}
	seen := map[string]bool{}
	for _, p := range c1.all() {
		if len(p) < 32 || seen[p] {
			t.Errorf("weak or repeated password of %d chars", len(p))
		}
		seen[p] = true
	}
	c2, created, err := LoadOrCreateCredentials(path, nil)
	if err != nil || created || c2 != c1 {
		t.Errorf("second load: created=%v err=%v same=%v", created, err, c2 == c1)
	}
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadCredentials(path); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Errorf("a world-readable credentials file was accepted: %v", err)
	}
}
