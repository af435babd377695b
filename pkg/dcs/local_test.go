package dcs

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pgherd/pgherd/internal/testuser"
	"github.com/pgherd/pgherd/pkg/service"
)

func pgherdUser(t *testing.T) *service.User {
	name, uid, gid := testuser.Pgherd(t)
	return &service.User{Name: name, UID: uid, GID: gid}
}

// TestLoadTakesConfigBack: a member configuration owned by the members'
// account (as earlier versions wrote it) is given back to root, 0640 with
// the account's group, before root reads from it what to delete.
func TestLoadTakesConfigBack(t *testing.T) {
	u := pgherdUser(t)
	l := &Local{Dir: t.TempDir(), User: u}
	file := l.ConfigFile("m1")
	if err := os.WriteFile(file, []byte("name: m1\nlisten_peer: 127.0.0.1:2380\nlisten_client: 127.0.0.1:2379\ndata_dir: /x\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(file, int(u.UID), int(u.GID)); err != nil {
		t.Fatal(err)
	}
	c, err := l.Load("m1")
	if err != nil || c.DataDir != "/x" {
		t.Fatalf("load: %+v %v", c, err)
	}
	fi, err := os.Stat(file)
	if err != nil {
		t.Fatal(err)
	}
	if st := fi.Sys().(*syscall.Stat_t); st.Uid != 0 || st.Gid != u.GID || fi.Mode().Perm() != 0o640 {
		t.Fatalf("after load: uid %d gid %d mode %v, want root, group %d, 0640", st.Uid, st.Gid, fi.Mode().Perm(), u.GID)
	}
	// A symlink in its place is refused, not followed.
	target := filepath.Join(t.TempDir(), "other.yaml")
	if err := os.Rename(file, target); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(target, file); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Load("m1"); err == nil {
		t.Fatal("a symlinked configuration was read")
	}
}

// TestCheckDataDir: only a directory owned by the members' account whose
// member.json names the member may be deleted; a symlink to it may not.
func TestCheckDataDir(t *testing.T) {
	uid := uint32(os.Geteuid())
	dir := filepath.Join(t.TempDir(), "m1")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := CheckDataDir(dir, "m1", uid); !errors.Is(err, ErrNotMemberData) {
		t.Fatalf("no member.json: %v", err)
	}
	if err := WriteIdentity(dir, "m2", ""); err != nil {
		t.Fatal(err)
	}
	if err := CheckDataDir(dir, "m1", uid); !errors.Is(err, ErrNotMemberData) {
		t.Fatalf("member.json of another member: %v", err)
	}
	if err := WriteIdentity(dir, "m1", ""); err != nil {
		t.Fatal(err)
	}
	if err := CheckDataDir(dir, "m1", uid+1); !errors.Is(err, ErrNotMemberData) {
		t.Fatalf("owned by another account: %v", err)
	}
	link := dir + "-link"
	if err := os.Symlink(dir, link); err != nil {
		t.Fatal(err)
	}
	if err := RemoveDataDir(link, "m1", uid); err == nil {
		t.Fatal("deleted through a symlink")
	}
	outside := filepath.Join(t.TempDir(), "outside")
	if err := os.WriteFile(outside, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Dir(outside), filepath.Join(dir, "planted")); err != nil {
		t.Fatal(err)
	}
	if err := RemoveDataDir(dir, "m1", uid); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("data dir still there: %v", err)
	}
	if _, err := os.Stat(outside); err != nil {
		t.Fatalf("a link inside the data dir was followed: %v", err)
	}
}

// TestWaitReadyWaitsOutAKeyPairBeingRewritten: a member that starts at a
// new address reissues its certificates (key, then certificate), while
// `dcs start` already waits for it with the same files. A pair read in
// between does not match; waiting treats that as the member not being
// ready yet, not as a failure (it failed `dcs restart` in a CI run).
func TestWaitReadyWaitsOutAKeyPairBeingRewritten(t *testing.T) {
	p := PKI{Dir: filepath.Join(t.TempDir(), "ca")}
	if err := p.Create("c"); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "m1")
	if err := p.IssueMember(dir, "m1", RoleData, []string{"127.0.0.1"}, []string{"127.0.0.1"}); err != nil {
		t.Fatal(err)
	}
	peer, _ := MemberTLS(dir)
	good, err := os.ReadFile(peer.Key)
	if err != nil {
		t.Fatal(err)
	}
	// Half-way through a reissue: a new key beside the old certificate.
	other := filepath.Join(t.TempDir(), "other")
	if err := p.IssueMember(other, "m1", RoleData, []string{"127.0.0.1"}, nil); err != nil {
		t.Fatal(err)
	}
	otherPeer, _ := MemberTLS(other)
	half, _ := os.ReadFile(otherPeer.Key)
	if err := os.WriteFile(peer.Key, half, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := peer.Client(); err == nil || !strings.Contains(err.Error(), "private key does not match public key") {
		t.Fatalf("a mismatched pair loads: %v", err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		time.Sleep(300 * time.Millisecond)
		os.WriteFile(peer.Key, good, 0o600)
	}()
	t.Cleanup(func() { <-done })

	// Nothing listens there: once the pair matches, waiting goes on until
	// its deadline and ends on the member not answering.
	l := &Local{Ready: 1500 * time.Millisecond}
	_, err = l.waitReady(context.Background(), Config{Name: "m1", ListenPeer: "127.0.0.1:1", PeerTLS: peer})
	if err == nil || strings.Contains(err.Error(), "load certificate") || !strings.Contains(err.Error(), "not ready after 1.5s") {
		t.Fatalf("waiting for a member whose key pair is being rewritten: %v", err)
	}
}

// TestLeaveGoesThroughADataMember: `dcs leave NAME` without --peer goes
// through another member of this host, a data member before a witness (a
// witness passes on only its own membership changes: the cluster refused
// the leave when it went through one).
func TestLeaveGoesThroughADataMember(t *testing.T) {
	l := &Local{Dir: t.TempDir()}
	write := func(name, role string) {
		y := "name: " + name + "\nrole: " + role + "\nlisten_peer: 127.0.0.1:2380\nlisten_client: 127.0.0.1:2379\ndata_dir: /x/" + name + "\n"
		if err := os.WriteFile(l.ConfigFile(name), []byte(y), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	pick := func() string {
		t.Helper()
		c, err := l.other("b")
		if err != nil {
			t.Fatal(err)
		}
		return c.Name
	}
	write("b", RoleData)
	if got := pick(); got != "b" {
		t.Fatalf("alone: through %s", got)
	}
	write("a", RoleWitness)
	if got := pick(); got != "a" {
		t.Fatalf("beside a witness: through %s", got)
	}
	write("c", RoleData)
	if got := pick(); got != "c" {
		t.Fatalf("beside a witness (a) and a data member (c): through %s, want c", got)
	}
}
