package dcs

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
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
