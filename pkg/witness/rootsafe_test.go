package witness

import (
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/pgherd/pgherd/pkg/dcs"
)

// TestRemoveRefusesEditedDataDir: a member configuration whose data_dir
// was edited to name an unrelated directory does not make root delete
// that directory; nothing is changed, and once data_dir is put back the
// removal deletes the member's own data.
func TestRemoveRefusesEditedDataDir(t *testing.T) {
	ctx := ctxT(t, 2*time.Minute)
	env := testEnv(t)
	d1 := dataMember(t, env, "d1", "z1")
	dataMember(t, env, "d2", "z2", d1.PeerAddr())
	waitZones(t, env, d1.PeerAddr(), 2)
	if _, err := Add(ctx, env, AddRequest{Name: "w1", Peer: d1.PeerAddr(), ListenPeer: freeAddr(t), ListenClient: freeAddr(t), Zone: "z3"}); err != nil {
		t.Fatal(err)
	}
	unrelated := filepath.Join(t.TempDir(), "unrelated")
	if err := os.MkdirAll(filepath.Join(unrelated, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(unrelated, "sub", "keep"), []byte("keep\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	file := env.Local.ConfigFile("w1")
	orig, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	real := env.Local.DefaultDataDir("w1")
	edited := regexp.MustCompile(`(?m)^data_dir:.*$`).ReplaceAllString(string(orig), "data_dir: "+unrelated)
	if edited == string(orig) {
		t.Fatalf("no data_dir key to edit:\n%s", orig)
	}
	if err := os.WriteFile(file, []byte(edited), 0o600); err != nil {
		t.Fatal(err)
	}

	err = Remove(ctx, env, "w1", false)
	if !errors.Is(err, dcs.ErrNotMemberData) || !strings.Contains(err.Error(), unrelated) {
		t.Fatalf("removal with an edited data_dir: %v", err)
	}
	if b, err := os.ReadFile(filepath.Join(unrelated, "sub", "keep")); err != nil || string(b) != "keep\n" {
		t.Fatalf("the unrelated directory was touched: %q %v", b, err)
	}
	ms, err := Members(ctx, env, d1.PeerAddr())
	if err != nil || suffrage(ms, "w1") != "voter" {
		t.Fatalf("a refused removal changed the cluster: %+v %v", ms, err)
	}
	if err := Remove(ctx, env, "w1", true); !errors.Is(err, dcs.ErrNotMemberData) {
		t.Fatalf("forced removal with an edited data_dir: %v", err)
	}
	if _, err := os.Stat(filepath.Join(unrelated, "sub", "keep")); err != nil {
		t.Fatalf("the unrelated directory was touched by --force: %v", err)
	}

	if err := os.WriteFile(file, orig, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := Remove(ctx, env, "w1", false); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{real, file} {
		if _, err := os.Stat(p); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("%s is still there: %v", p, err)
		}
	}
	if _, err := os.Stat(filepath.Join(unrelated, "sub", "keep")); err != nil {
		t.Fatalf("the unrelated directory was touched: %v", err)
	}
	// No data member is set up on this host (d1 and d2 run in-process):
	// the CA keys and the administrator's credential went with w1.
	if _, ok := env.Local.AdminTLS(); ok || env.Local.PKI().Exists() {
		t.Fatalf("a host with no data member kept the CA or the administrator's credential")
	}
}
