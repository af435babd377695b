package server

import (
	"fmt"
	"testing"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
)

// TestLogStoreTailTruncationSurvivesReopen is hashicorp/raft-wal issue #31
// without a cluster: Raft truncates a follower's log tail when it conflicts
// with a new leader's; raft-wal v0.4.0 sealed the open segment without
// writing its index, and the next open failed ("sealed segment has no index
// block"), so the member could never start again.
func TestLogStoreTailTruncationSurvivesReopen(t *testing.T) {
	dir := t.TempDir()
	hl := hclog.NewNullLogger()
	logs, meta, err := openLogStore(dir, hl)
	if err != nil {
		t.Fatal(err)
	}
	store := func(from, to uint64, term uint64) {
		t.Helper()
		var batch []*raft.Log
		for i := from; i <= to; i++ {
			batch = append(batch, &raft.Log{Index: i, Term: term, Type: raft.LogCommand, Data: []byte(fmt.Sprintf("e%d-%d", term, i))})
		}
		if err := logs.StoreLogs(batch); err != nil {
			t.Fatal(err)
		}
	}
	reopen := func() {
		t.Helper()
		if err := logs.Close(); err != nil {
			t.Fatal(err)
		}
		meta.Close()
		if logs, meta, err = openLogStore(dir, hl); err != nil {
			t.Fatalf("reopen after tail truncation: %v", err)
		}
	}
	store(1, 100, 1)
	if err := logs.DeleteRange(61, 100); err != nil { // the conflicting tail
		t.Fatal(err)
	}
	reopen()
	store(61, 80, 2) // the new leader's entries
	if err := logs.DeleteRange(71, 80); err != nil {
		t.Fatal(err)
	}
	reopen()
	defer func() { logs.Close(); meta.Close() }()
	if last, _ := logs.LastIndex(); last != 70 {
		t.Fatalf("last index after reopen = %d, want 70", last)
	}
	var l raft.Log
	if err := logs.GetLog(65, &l); err != nil || string(l.Data) != "e2-65" {
		t.Fatalf("entry 65 = %q, %v; want the new leader's e2-65", l.Data, err)
	}
	if err := logs.GetLog(60, &l); err != nil || string(l.Data) != "e1-60" {
		t.Fatalf("entry 60 = %q, %v; want e1-60", l.Data, err)
	}
}
