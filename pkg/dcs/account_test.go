package dcs

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/pgherd/pgherd/pkg/service"
)

// TestSetupRefusesPatroniKeyAmongMemberKeys: on a host where a Patroni's
// DCS key sits in a member's certificate directory owned by another
// account (members made before they had an account of their own), a new
// member is refused, nothing made, rather than handing that key to the
// members' account and leaving Patroni without it.
func TestSetupRefusesPatroniKeyAmongMemberKeys(t *testing.T) {
	pg := pgherdUser(t)
	members := &service.User{Name: "pgherd-dcs-test", UID: pg.UID + 1000, GID: pg.GID + 1000}
	l := &Local{Dir: t.TempDir(), User: members, PatroniUser: pg}
	old := l.TLSDir("pg1")
	if err := os.MkdirAll(old, 0o700); err != nil {
		t.Fatal(err)
	}
	key := filepath.Join(old, "patroni.key")
	if err := os.WriteFile(key, []byte("key"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{old, key} {
		if err := os.Chown(p, int(pg.UID), int(pg.GID)); err != nil {
			t.Fatal(err)
		}
	}
	_, err := l.Setup(context.Background(), Config{Name: "pg2", Role: RoleData, ListenPeer: "127.0.0.1:1", ListenClient: "127.0.0.1:2"})
	if err == nil || !strings.Contains(err.Error(), "member pg1 was set up before DCS members had an account of their own") ||
		!strings.Contains(err.Error(), "patroni.dcs.embedded.sysuser") {
		t.Fatalf("Setup = %v", err)
	}
	for _, p := range []string{l.ConfigFile("pg2"), l.TLSDir("pg2"), l.PKI().Dir, l.DefaultDataDir("pg2")} {
		if _, err := os.Lstat(p); err == nil {
			t.Errorf("%s was made", p)
		}
	}
	if fi, _ := os.Stat(key); fi == nil || fi.Sys().(*syscall.Stat_t).Uid != pg.UID {
		t.Errorf("Patroni's key changed hands")
	}
}
