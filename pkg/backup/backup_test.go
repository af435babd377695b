package backup

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pgherd/pgherd/pkg/postgres"
	"github.com/pgherd/pgherd/pkg/site"
)

func testEnv() *Env {
	s := site.Defaults()
	s.Prefix, s.RunPrefix = "/p", "/r"
	p := site.DefaultPgBackRest()
	p.Repository.Options = map[string]string{"repo1-retention-full": "2", "compress-type": "zst"}
	s.PgBackRest = &p
	return &Env{Site: &s}
}

var testInstance = Instance{ID: "15/pg1", Version: "15", Name: "pg1", DataDir: "/p/data", WALDir: "/p/wal",
	Conn: postgres.ConnParams{SocketDir: "/r/postgresql", Port: 5433, User: "postgres"}}

// The file pgherd writes is stable (sorted) and names the instance's
// server; archive_command points at that file and stanza.
func TestConfig(t *testing.T) {
	e := testEnv()
	want := `# Written by pgherd for instance 15/pg1; changes are lost at the next write.
[global]
compress-type=zst
lock-path=/r/pgbackrest
log-path=/p/log/pgbackrest
repo1-path=/p/srv/pgbackrest
repo1-retention-full=2
spool-path=/r/pgbackrest/spool
start-fast=y

[15-pg1]
pg1-path=/p/data
pg1-port=5433
pg1-socket-path=/r/postgresql
pg1-user=postgres
`
	if got := e.config(testInstance); got != want {
		t.Errorf("config:\n%s\nwant:\n%s", got, want)
	}
	if got := e.ArchiveSettings(testInstance)[1][1]; got != `'/usr/bin/pgbackrest --config=/p/etc/pgbackrest/15-pg1.conf --stanza=15-pg1 archive-push %p'` {
		t.Errorf("archive_command = %s", got)
	}
}

// A Patroni cluster's file is named after the cluster, whatever member
// writes it, and lists the cluster's members on this host as pg1..pgN;
// the commands name the member's own directory as pg1-path.
func TestClusterConfig(t *testing.T) {
	e := testEnv()
	m := func(name string, port int) Member {
		return Member{Name: name, DataDir: "/p/" + name, Conn: postgres.ConnParams{SocketDir: "/r/postgresql", Port: port, User: "postgres"}}
	}
	members := []Member{m("pg1", 5433), m("pg2", 5434)}
	for _, self := range members {
		i := Instance{ID: "15/" + self.Name, Version: "15", Name: self.Name, DataDir: self.DataDir, Conn: self.Conn, Cluster: "emb", Members: members}
		if got := e.ConfigFile(i); got != "/p/etc/pgbackrest/15-cluster.emb.conf" {
			t.Errorf("ConfigFile from %s = %s", self.Name, got)
		}
		got := e.config(i)
		want := `# Written by pgherd for Patroni cluster emb; changes are lost at the next write.`
		if !strings.HasPrefix(got, want) || !strings.HasSuffix(got, `
[emb]
# member pg1
pg1-path=/p/pg1
pg1-port=5433
pg1-socket-path=/r/postgresql
pg1-user=postgres
# member pg2
pg2-path=/p/pg2
pg2-port=5434
pg2-socket-path=/r/postgresql
pg2-user=postgres
`) {
			t.Errorf("config from %s:\n%s", self.Name, got)
		}
		if got := e.ClusterArchiveCommand(i); got != `/usr/bin/pgbackrest --config=/p/etc/pgbackrest/15-cluster.emb.conf --stanza=emb --pg1-path="$PWD" archive-push "$PWD/%p"` {
			t.Errorf("archive_command = %s", got)
		}
	}
	create, restore := e.ReplicaCommands(Instance{Version: "15", Cluster: "emb"}, "/p/pg2")
	if create != "/usr/bin/pgbackrest --config=/p/etc/pgbackrest/15-cluster.emb.conf --stanza=emb --pg1-path=/p/pg2 --delta --type=standby restore" {
		t.Errorf("create replica command = %s", create)
	}
	if restore != `/usr/bin/pgbackrest --config=/p/etc/pgbackrest/15-cluster.emb.conf --stanza=emb --pg1-path=/p/pg2 archive-get %f "%p"` {
		t.Errorf("restore_command = %s", restore)
	}
}

// Archiving is pgherd's on an instance with a pgBackRest file only.
func TestCheckOwned(t *testing.T) {
	e := testEnv()
	e.Site.Prefix = t.TempDir()
	if err := e.CheckOwned(testInstance, "archive_command"); err != nil {
		t.Errorf("archive_command without the instance's file: %v", err)
	}
	f := e.ConfigFile(testInstance)
	if err := os.MkdirAll(filepath.Dir(f), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(f, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := e.CheckOwned(testInstance, "Archive_Command"); err == nil || !strings.Contains(err.Error(), "archive_command is set by pgherd") {
		t.Errorf("archive_command: %v", err)
	}
	if err := e.CheckOwned(testInstance, "work_mem"); err != nil {
		t.Errorf("work_mem: %v", err)
	}
	e.Site.PgBackRest = nil
	if err := e.CheckOwned(testInstance, "archive_command"); err != nil {
		t.Errorf("archive_command without pgBackRest: %v", err)
	}
}

func TestErrorLine(t *testing.T) {
	out := "WARN: unable to check pg1: [DbConnectError] unable to connect\n" +
		"ERROR: [041]: unable to load info file 'a': FileOpenError: unable to open file 'a' for read\n" +
		"       FileOpenError: unable to open file 'a.copy' for read\n" +
		"       HINT: archive.info cannot be opened.\n" +
		"       HINT: has a stanza-create been performed?\n"
	want := "ERROR: [041]: unable to load info file 'a': FileOpenError: unable to open file 'a' for read FileOpenError: unable to open file 'a.copy' for read (HINT: archive.info cannot be opened.)"
	if got := errorLine(out); got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
	if got := errorLine("2026-12-06 13:17:17.926 P00  ERROR: [056]: boom\n"); got != "ERROR: [056]: boom" {
		t.Errorf("with log prefix: %s", got)
	}
}

const infoOut = `[{"name":"15-pg1","status":{"code":0,"message":"ok"},"backup":[
{"label":"20261206-131718F","type":"full","prior":null,"timestamp":{"start":100,"stop":110},
 "info":{"size":2000,"repository":{"size":300,"delta":300}},"archive":{"start":"A","stop":"B"}},
{"label":"20261206-131718F_20261206-131800I","type":"incr","prior":"20261206-131718F","timestamp":{"start":200,"stop":210},
 "info":{"size":2100,"repository":{"size":310,"delta":10}},"archive":{"start":"C","stop":"D"}}]},
{"name":"15-other","status":{"code":2,"message":"no valid backups"},"backup":[]}]`

func TestParseInfo(t *testing.T) {
	bs, err := parseInfo(infoOut, "15-pg1")
	if err != nil || len(bs) != 2 {
		t.Fatalf("got %v, %v", bs, err)
	}
	if b := bs[1]; b.Type != "incr" || b.Prior == nil || *b.Prior != "20261206-131718F" || b.RepoDelta != 10 || !b.Stop.Equal(time.Unix(210, 0)) || b.WALStop != "D" {
		t.Errorf("incr: %+v", b)
	}
	if bs[0].Prior != nil {
		t.Errorf("full: prior %v", *bs[0].Prior)
	}
	if bs, err := parseInfo(infoOut, "15-other"); err != nil || len(bs) != 0 {
		t.Errorf("no backups yet: %v, %v", bs, err)
	}
	if _, err := parseInfo(infoOut, "15-none"); err == nil || !strings.Contains(err.Error(), "stanza 15-none is not in the repository") {
		t.Errorf("missing stanza: %v", err)
	}
}

// A time target takes the last backup consistent strictly before it; a
// time before the first backup's end, or in the future, is refused.
func TestPlan(t *testing.T) {
	bs, _ := parseInfo(infoOut, "15-pg1")
	now := time.Unix(1000, 0)
	for _, c := range []struct {
		target Target
		set    string
		args   string
		err    string
	}{
		{Target{Time: time.Unix(150, 0)}, "20261206-131718F", "--type=time --target=1970-01-01 00:02:30+00 --target-action=promote", ""},
		{Target{Time: time.Unix(211, 0)}, "20261206-131718F_20261206-131800I", "--type=time", ""},
		{Target{Time: time.Unix(210, 500)}, "20261206-131718F", "--type=time", ""},
		{Target{Time: time.Unix(110, 0)}, "", "", "is before the end of the first backup (20261206-131718F, ended 1970-01-01 00:01:50+00)"},
		{Target{Time: time.Unix(1001, 0)}, "", "", "is after the last archived WAL (it is in the future)"},
		{Target{Latest: true}, "20261206-131718F_20261206-131800I", "--type=default", ""},
		{Target{Label: "20261206-131718F"}, "20261206-131718F", "--type=immediate --target-action=promote", ""},
		{Target{Label: "nope"}, "", "", "no backup nope"},
	} {
		b, args, _, err := plan(bs, c.target, now)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("%+v: got %v, want %q", c.target, err, c.err)
			}
			continue
		}
		got := strings.Join(args, " ")
		if err != nil || b.Label != c.set || !strings.HasPrefix(got, "--set="+c.set+" "+c.args) {
			t.Errorf("%+v: got %s [%s] %v", c.target, b.Label, got, err)
		}
	}
	if _, _, _, err := plan(nil, Target{Latest: true}, now); err != ErrNoBackup {
		t.Errorf("no backups: %v", err)
	}
}

func TestHumanSize(t *testing.T) {
	for n, want := range map[int64]string{512: "512B", 22986984: "21.9MB", 3 << 30: "3.0GB"} {
		if got := HumanSize(n); got != want {
			t.Errorf("%d: %s, want %s", n, got, want)
		}
	}
}
