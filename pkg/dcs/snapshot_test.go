package dcs

import (
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
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
	rev, n, err := copySnapshotStream(strings.NewReader(streamOf(db[:1000], db[1000:], sum[:])), io.Discard, sha256.New())
	if err != nil || rev != 7 || n != 4096+32 {
		t.Fatalf("complete stream: rev %d, %d bytes, %v", rev, n, err)
	}
	for name, stream := range map[string]string{
		"cut before the digest": streamOf(db[:1000], db[1000:]),
		"wrong digest":          streamOf(db, make([]byte, 32)),
		"error":                 streamOf(db) + `{"error":{"message":"etcdserver: request timed out"}}`,
		"cut mid-message":       streamOf(db, sum[:])[:100],
	} {
		if _, _, err := copySnapshotStream(strings.NewReader(stream), io.Discard, sha256.New()); err == nil {
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
