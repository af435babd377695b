package service

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestStartLogSymlinkNotFollowed: the service account plants a symlink
// where the start log goes (it owns the log directory); root must neither
// write through it nor hand the target over to that account
// (CVE-2016-1255's pattern).
func TestStartLogSymlinkNotFollowed(t *testing.T) {
	u := testUser(t)
	dir := sharedDir(t)
	m := NewProcess(Config{RunDir: filepath.Join(dir, "run"), StopTimeout: 10 * time.Second})
	s := Service{Kind: KindDCS, Instance: "planted", Exec: []string{"/usr/bin/sleep", "300"},
		LogFile: filepath.Join(dir, "log", "planted.log"), User: u}
	if err := m.Install(context.Background(), s); err != nil {
		t.Fatal(err)
	}
	killAtEnd(t, m, s)
	if fi, err := os.Stat(filepath.Dir(s.LogFile)); err != nil || fi.Sys().(*syscall.Stat_t).Uid != u.UID {
		t.Fatalf("the log directory should belong to %s: %v %v", u.Name, fi, err)
	}
	target := filepath.Join(t.TempDir(), "root-only")
	if err := os.WriteFile(target, []byte("root's\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(target, s.LogFile); err != nil {
		t.Fatal(err)
	}
	if err := os.Lchown(s.LogFile, int(u.UID), int(u.GID)); err != nil {
		t.Fatal(err)
	}
	err := m.Start(context.Background(), s)
	if err == nil || !strings.Contains(err.Error(), "symbolic link") {
		t.Fatalf("start through a planted symlink: %v", err)
	}
	fi, err := os.Stat(target)
	if err != nil {
		t.Fatal(err)
	}
	if st := fi.Sys().(*syscall.Stat_t); st.Uid != 0 || fi.Mode().Perm() != 0o600 {
		t.Fatalf("the symlink's target was handed over: uid %d mode %v", st.Uid, fi.Mode())
	}
	if b, _ := os.ReadFile(target); string(b) != "root's\n" {
		t.Fatalf("the symlink's target was written: %q", b)
	}
	if st, _ := m.Status(context.Background(), s); st.Running {
		t.Fatalf("the service started anyway")
	}
}

// TestStartLogHardLinkRefused: a hard link to a root file in the log
// directory is refused too (a chown through it would give the file away).
func TestStartLogHardLinkRefused(t *testing.T) {
	u := testUser(t)
	dir := sharedDir(t)
	m := NewProcess(Config{RunDir: filepath.Join(dir, "run"), StopTimeout: 10 * time.Second})
	s := Service{Kind: KindDCS, Instance: "linked", Exec: []string{"/usr/bin/sleep", "300"},
		LogFile: filepath.Join(dir, "log", "linked.log"), User: u}
	if err := m.Install(context.Background(), s); err != nil {
		t.Fatal(err)
	}
	killAtEnd(t, m, s)
	target := filepath.Join(dir, "root-only")
	if err := os.WriteFile(target, []byte("root's\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Link(target, s.LogFile); err != nil {
		t.Fatal(err)
	}
	if err := m.Start(context.Background(), s); err == nil || !strings.Contains(err.Error(), "hard link") {
		t.Fatalf("start through a hard link: %v", err)
	}
	if fi, err := os.Stat(target); err != nil || fi.Sys().(*syscall.Stat_t).Uid != 0 {
		t.Fatalf("the hard link's target was handed over: %v %v", fi, err)
	}
}
