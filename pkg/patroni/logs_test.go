package patroni

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

const (
	patroniLog = "2026-11-24 05:19:50,100 INFO: Lock owner: None; I am pg1\n" +
		"2026-11-24 05:19:52,300 INFO: no action. I am (pg1), the leader with the lock\n"
	postgresLog = "2026-11-24 05:19:51.200 UTC [42] LOG:  database system is ready to accept connections\n" +
		"2026-11-24 05:19:53.000 UTC [43] ERROR:  syntax error at or near \"x\"\n" +
		"\tcontinued detail line\n"
)

func writeLogs(t *testing.T) (string, string) {
	dir := t.TempDir()
	p, q := filepath.Join(dir, "patroni.log"), filepath.Join(dir, "postgresql.log")
	if err := os.WriteFile(p, []byte(patroniLog), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(q, []byte(postgresLog), 0o600); err != nil {
		t.Fatal(err)
	}
	return p, q
}

func TestTailInterleaves(t *testing.T) {
	p, q := writeLogs(t)
	lines, err := Tail([]string{p, q}, 0)
	if err != nil {
		t.Fatal(err)
	}
	got := make([]string, len(lines))
	for i, l := range lines {
		got[i] = l[:min(len(l), 23)]
	}
	want := []string{"2026-11-24 05:19:50,100", "2026-11-24 05:19:51.200", "2026-11-24 05:19:52,300", "2026-11-24 05:19:53.000", "\tcontinued detail line"}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("got %q", got)
	}
	if last, _ := Tail([]string{p}, 1); len(last) != 1 || !strings.Contains(last[0], "the leader with the lock") {
		t.Errorf("tail -1: %q", last)
	}
	if _, err := Tail([]string{p + ".missing"}, 0); err == nil {
		t.Error("a missing log file passed")
	}
}

func TestFollow(t *testing.T) {
	p, _ := writeLogs(t)
	later := filepath.Join(filepath.Dir(p), "later.log")  // does not exist yet
	pattern := filepath.Join(filepath.Dir(p), "pg-*.log") // matches nothing yet
	ctx, cancel := context.WithCancel(context.Background())
	var mu sync.Mutex
	var got []string
	done := make(chan error)
	fl := NewFollower([]string{p, later, pattern}, false)
	go func() {
		done <- fl.Run(ctx, 20*time.Millisecond, func(l string) {
			mu.Lock()
			got = append(got, l)
			mu.Unlock()
		})
	}()
	f, err := os.OpenFile(p, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString("2026-11-24 05:20:00,000 INFO: new line\n")
	f.Close()
	os.WriteFile(later, []byte("2026-11-24 05:20:01.000 UTC [9] LOG:  from a file created later\n"), 0o600)
	os.WriteFile(filepath.Join(filepath.Dir(p), "pg-1.log"), []byte("2026-11-24 05:20:02.000 UTC [9] LOG:  from a file matching the pattern\n"), 0o600)
	err = poll(5*time.Second, func() error {
		mu.Lock()
		defer mu.Unlock()
		if len(got) < 3 {
			return os.ErrNotExist
		}
		return nil
	})
	cancel()
	if ferr := <-done; ferr != nil {
		t.Fatal(ferr)
	}
	if err != nil {
		t.Fatalf("lines seen: %q", got)
	}
	if len(got) != 3 || got[0] != "2026-11-24 05:20:00,000 INFO: new line" || !strings.Contains(got[1], "created later") || !strings.Contains(got[2], "matching the pattern") {
		t.Errorf("followed %q (old lines must not be repeated)", got)
	}
}

func TestReadNewJoinsPartialLinesAndSeesTruncation(t *testing.T) {
	p := filepath.Join(t.TempDir(), "patroni.log")
	var off int64
	var partial []byte
	if lines, err := readNew(p, &off, &partial); err != nil || lines != nil {
		t.Fatalf("missing file: %q %v", lines, err)
	}
	os.WriteFile(p, []byte("a1\na2 half"), 0o600)
	if lines, _ := readNew(p, &off, &partial); strings.Join(lines, "|") != "a1" {
		t.Errorf("got %q", lines)
	}
	f, _ := os.OpenFile(p, os.O_APPEND|os.O_WRONLY, 0)
	f.WriteString(" done\n")
	f.Close()
	if lines, _ := readNew(p, &off, &partial); strings.Join(lines, "|") != "a2 half done" {
		t.Errorf("got %q", lines)
	}
	os.WriteFile(p, []byte("b1\n"), 0o600) // rotated: smaller than what was read
	if lines, _ := readNew(p, &off, &partial); strings.Join(lines, "|") != "b1" {
		t.Errorf("after truncation got %q", lines)
	}
}
