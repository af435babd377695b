package dcs

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pgherd/pgherd/pkg/site"
)

func streamOf(chunks ...[]byte) string {
	var b strings.Builder
	for _, c := range chunks {
		fmt.Fprintf(&b, `{"result":{"header":{"revision":"7"},"blob":%q}}`+"\n", base64.StdEncoding.EncodeToString(c))
	}
	return b.String()
}

func TestCopySnapshotStream(t *testing.T) {
	db := make([]byte, 4096)
	for i := range db {
		db[i] = byte(i)
	}
	sum := sha256.Sum256(db)
	var got bytes.Buffer
	rev, n, err := copySnapshotStream(strings.NewReader(streamOf(db[:1000], db[1000:], sum[:])), &got)
	if err != nil || rev != 7 || n != 4096+32 || !bytes.Equal(got.Bytes(), append(db, sum[:]...)) {
		t.Fatalf("complete stream: rev %d, %d bytes, %v", rev, n, err)
	}
	for name, stream := range map[string]string{
		"error":           streamOf(db) + `{"error":{"message":"etcdserver: request timed out"}}`,
		"cut mid-message": streamOf(db, sum[:])[:100],
	} {
		if _, _, err := copySnapshotStream(strings.NewReader(stream), io.Discard); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestCheckSnapshotFile(t *testing.T) {
	dir := t.TempDir()
	db := make([]byte, 8192)
	sum := sha256.Sum256(db)
	good := filepath.Join(dir, "good")
	os.WriteFile(good, append(db, sum[:]...), 0o600)
	if err := CheckSnapshotFile(good); err != nil {
		t.Fatal(err)
	}
	for name, data := range map[string][]byte{
		"truncated":    append(db, sum[:]...)[:6000],
		"no digest":    db,
		"damaged":      append(append([]byte{1}, db[1:]...), sum[:]...),
		"another file": []byte("PGDMP custom dump\n"),
		"empty":        nil,
	} {
		p := filepath.Join(dir, strings.ReplaceAll(name, " ", "-"))
		os.WriteFile(p, data, 0o600)
		if err := CheckSnapshotFile(p); !errors.Is(err, ErrBadSnapshot) {
			t.Errorf("%s: %v, want ErrBadSnapshot", name, err)
		}
	}
}

func TestSnapshotSchedule(t *testing.T) {
	if s := ScheduleOf("/srv", site.DCSSnapshots{Interval: 60, Keep: 2}); s != (SnapshotSchedule{}) {
		t.Fatalf("no dir: %+v, want none", s)
	}
	s := ScheduleOf("/srv", site.DCSSnapshots{Dir: "backup/dcs", Interval: 60, Keep: 2})
	if s != (SnapshotSchedule{Dir: "/srv/backup/dcs", Interval: time.Minute, Keep: 2}) || s.validate() != nil {
		t.Fatalf("relative dir: %+v", s)
	}
	for _, bad := range []SnapshotSchedule{{Dir: "rel", Interval: time.Hour, Keep: 1}, {Dir: "/x", Interval: time.Millisecond}, {Dir: "/x", Keep: -1}} {
		if bad.validate() == nil {
			t.Errorf("%+v accepted", bad)
		}
	}
	def := SnapshotSchedule{Dir: "/x"}
	if def.validate() != nil || def.Interval != time.Hour || def.Keep != 24 {
		t.Fatalf("defaults: %+v", def)
	}
}

// TestSaveSnapshotHungMember: a member that accepts the connection and
// never answers, or stops in the middle of its answer, is an error within
// the bound, and no file is left behind.
func TestSaveSnapshotHungMember(t *testing.T) {
	defer func(d time.Duration) { snapshotTimeout = d }(snapshotTimeout)
	snapshotTimeout = 300 * time.Millisecond
	for _, c := range []struct {
		name   string
		answer string // written before the member goes silent
		want   string
	}{
		{"no answer", "", "no answer in 300ms"},
		{"half an answer", "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\r\n" + streamOf([]byte("part")), "nothing more for 300ms"},
	} {
		t.Run(c.name, func(t *testing.T) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			var mu sync.Mutex
			var conns []net.Conn
			defer func() {
				mu.Lock()
				defer mu.Unlock()
				for _, c := range conns {
					c.Close()
				}
			}()
			go func() {
				for {
					conn, err := ln.Accept()
					if err != nil {
						return
					}
					mu.Lock()
					conns = append(conns, conn)
					mu.Unlock()
					go func() {
						buf := make([]byte, 4096)
						conn.Read(buf) // the request
						conn.Write([]byte(c.answer))
					}()
				}
			}()
			dir := t.TempDir()
			file := filepath.Join(dir, "snap.db")
			done := make(chan error, 1)
			start := time.Now()
			go func() {
				_, err := SaveSnapshot(context.Background(), "http://"+ln.Addr().String(), TLSConfig{}, file)
				done <- err
			}()
			select {
			case err := <-done:
				if err == nil || !strings.Contains(err.Error(), c.want) {
					t.Errorf("got %v, want an error saying %q", err, c.want)
				}
				if d := time.Since(start); d > 5*time.Second {
					t.Errorf("the error took %s", d)
				}
			case <-time.After(5 * time.Second):
				t.Fatal("SaveSnapshot still waits for a member that says nothing after 5s")
			}
			if ents, _ := os.ReadDir(dir); len(ents) != 0 {
				t.Errorf("left behind: %v", ents)
			}
		})
	}
}
