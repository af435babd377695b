package server

import (
	"bytes"
	"context"
	"crypto/tls"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/pgherd/pgherd/pkg/dcs"
)

// etcdctlStep is one etcdctl invocation of the conformance script. {LEASE}
// in an argument is replaced by the lease ID the script granted.
type etcdctlStep struct {
	args    []string
	stdin   string
	all     bool          // against all endpoints rather than the first
	bounded time.Duration // run for this long, then stop it (watch)
	sorted  bool          // compare lines as a set (member order, concurrent health checks)
}

var conformanceScript = []etcdctlStep{
	{args: []string{"put", "foo", "bar"}},
	{args: []string{"get", "foo"}},
	{args: []string{"put", "foo2", "baz"}},
	{args: []string{"get", "--prefix", "foo"}},
	{args: []string{"get", "--prefix", "foo", "-w", "json"}},
	{args: []string{"get", "--prefix", "--keys-only", "--limit", "1", "foo"}},
	{args: []string{"get", "--prefix", "--count-only", "foo", "-w", "fields"}},
	{args: []string{"get", "nothing"}},
	{args: []string{"del", "foo"}},
	{args: []string{"del", "foo"}},
	{args: []string{"txn"}, stdin: "value(\"foo2\") = \"baz\"\n\nput foo3 qux\n\nget foo2\n\n"},
	{args: []string{"txn"}, stdin: "value(\"foo2\") = \"nope\"\n\nput foo3 qux\n\nget foo2\n\n"},
	{args: []string{"txn", "-w", "json"}, stdin: "create(\"foo9\") = \"0\"\n\nput foo9 x\n\n\n"},
	{args: []string{"lease", "grant", "100"}},
	{args: []string{"put", "--lease={LEASE}", "leased", "v"}},
	{args: []string{"lease", "keep-alive", "--once", "{LEASE}"}},
	{args: []string{"lease", "timetolive", "--keys", "{LEASE}"}},
	{args: []string{"lease", "list"}},
	{args: []string{"lease", "revoke", "{LEASE}"}},
	{args: []string{"get", "leased"}},
	{args: []string{"lease", "timetolive", "{LEASE}"}},
	{args: []string{"lease", "keep-alive", "--once", "{LEASE}"}},
	{args: []string{"put", "--lease=1234abcd", "k", "v"}},
	{args: []string{"watch", "--prefix", "foo", "--rev", "1"}, bounded: 2 * time.Second},
	{args: []string{"watch", "--prev-kv", "--rev", "1", "foo2"}, bounded: 2 * time.Second},
	{args: []string{"compaction", "4"}},
	{args: []string{"get", "foo2", "--rev", "3"}},
	{args: []string{"watch", "foo2", "--rev", "2"}, bounded: 2 * time.Second},
	{args: []string{"member", "list"}, sorted: true},
	{args: []string{"endpoint", "status"}, all: true, sorted: true},
	{args: []string{"endpoint", "health"}, all: true, sorted: true},
	{args: []string{"alarm", "list"}},
	{args: []string{"alarm", "disarm"}},
	{args: []string{"alarm", "list", "-w", "json"}},
}

var (
	leaseHex   = regexp.MustCompile(`lease [0-9a-f]+`)
	urlPort    = regexp.MustCompile(`127\.0\.0\.1:\d+`)
	memberHex  = regexp.MustCompile(`\b[0-9a-f]{14,16}\b`)
	jsonNum    = regexp.MustCompile(`"(cluster_id|member_id|revision|raft_term|create_revision|mod_revision|ID|lease)":\d+`)
	tookRe     = regexp.MustCompile(`took = [0-9.]+[µnm]?s`)
	remaining  = regexp.MustCompile(`remaining\(\d+s\)`)
	statusLine = regexp.MustCompile(`^(\S+), (\S+), \S+, [^,]+, (true|false), (true|false), \d+, \d+, \d+,\s*(.*)$`)
)

// mask hides what legitimately differs between two clusters.
func mask(out string) string {
	out = leaseHex.ReplaceAllString(out, "lease L")
	out = urlPort.ReplaceAllString(out, "127.0.0.1:P")
	out = jsonNum.ReplaceAllString(out, `"$1":N`)
	out = tookRe.ReplaceAllString(out, "took = T")
	out = remaining.ReplaceAllString(out, "remaining(R)")
	out = memberHex.ReplaceAllString(out, "ID")
	var lines []string
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, `{"level":`) {
			continue // etcdctl's own client log, with timestamps
		}
		l = strings.TrimRight(l, " ")
		if m := statusLine.FindStringSubmatch(l); m != nil {
			l = m[1] + ", " + m[2] + ", V, SIZE, LEADER?, " + m[4] + ", TERM, INDEX, APPLIED," + m[5]
		}
		lines = append(lines, l)
	}
	return strings.Join(lines, "\n")
}

func runScript(t *testing.T, endpoints []string, creds dcs.TLSConfig) []string {
	t.Helper()
	var outs []string
	lease := ""
	for _, st := range conformanceScript {
		eps := endpoints[:1]
		if st.all {
			eps = endpoints
		}
		args := []string{"--endpoints", strings.Join(eps, ","), "--dial-timeout", "3s", "--command-timeout", "5s",
			"--cacert", creds.CA, "--cert", creds.Cert, "--key", creds.Key}
		for _, a := range st.args {
			args = append(args, strings.ReplaceAll(a, "{LEASE}", lease))
		}
		ctx := context.Background()
		var cancel context.CancelFunc = func() {}
		if st.bounded > 0 {
			ctx, cancel = context.WithTimeout(ctx, st.bounded)
		}
		cmd := exec.CommandContext(ctx, "etcdctl", args...)
		cmd.Env = append(os.Environ(), "ETCDCTL_API=3")
		cmd.Stdin = strings.NewReader(st.stdin)
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		err := cmd.Run()
		cancel()
		text := strings.TrimSpace(out.String())
		if st.bounded == 0 && err != nil {
			text += "\n[exit: " + err.Error() + "]"
		}
		if st.args[0] == "lease" && st.args[1] == "grant" {
			if f := strings.Fields(text); len(f) > 1 {
				lease = f[1]
			}
		}
		m := mask(text)
		if st.sorted {
			ls := strings.Split(m, "\n")
			sort.Strings(ls)
			m = strings.Join(ls, "\n")
		}
		outs = append(outs, "$ etcdctl "+strings.Join(st.args, " ")+"\n"+m)
	}
	return outs
}

func settle(t *testing.T, endpoints []string, tc *tls.Config) {
	t.Helper()
	cl, err := clientv3.New(clientv3.Config{Endpoints: endpoints, DialTimeout: 5 * time.Second, TLS: tc})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx := ctxT(t, 20*time.Second)
	if _, err := cl.Put(ctx, "/__ready", "1"); err != nil {
		t.Fatal(err)
	}
	if _, err := cl.Delete(ctx, "/__ready"); err != nil {
		t.Fatal(err)
	}
}

// TestEtcdctlConformance runs the same etcdctl script against a real
// 3-member etcd 3.4 and a 3-member pgherd dcs, both with mutual TLS on both
// ports (etcd's --client-cert-auth and --peer-client-cert-auth; ours: the
// default), and
// compares the outputs after masking IDs, ports, terms, indexes, versions
// and sizes.
func TestEtcdctlConformance(t *testing.T) {
	if _, err := exec.LookPath("etcdctl"); err != nil {
		t.Skip("etcdctl is not installed")
	}
	p := newTestPKI(t)
	tc := p.client("etcdctl")
	creds := dcs.TLSConfig{Cert: filepath.Join(p.dir, "clients", "etcdctl.crt"), Key: filepath.Join(p.dir, "clients", "etcdctl.key"),
		CA: filepath.Join(p.dir, "clients", dcs.ClientCAFile)}
	etcdPeer, etcdClient := p.member("etcd", dcs.RoleData)
	ref := startRealEtcdTLS(t, 3, &etcdPeer, &etcdClient, tc)
	ours := newCluster(t, 3, p.secure(nil))
	settle(t, ours.endpoints(), tc)
	want := runScript(t, ref.clientURLs, creds)
	got := runScript(t, ours.endpoints(), creds)
	for i := range want {
		if want[i] != got[i] {
			t.Errorf("step %d differs\n--- etcd 3.4:\n%s\n--- pgherd:\n%s", i, want[i], got[i])
		}
	}
}
