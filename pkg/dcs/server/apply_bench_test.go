package server

import (
	"strings"
	"testing"

	"github.com/hashicorp/raft"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
)

// benchPutCommand is the bench's write: a 256-byte value.
func benchPutCommand(b *testing.B) []byte {
	cmd, err := encodeMsg(opPut, &pb.PutRequest{Key: []byte("/bench/seq/1"), Value: []byte(strings.Repeat("v", 256))})
	if err != nil {
		b.Fatal(err)
	}
	return cmd
}

// BenchmarkApplyPut measures what every member does with a committed put:
// decode, the checks of the limits version (checkCommand, the NOSPACE
// alarm), and the store's put with its accounting.
func BenchmarkApplyPut(b *testing.B) {
	for _, limits := range []bool{false, true} {
		name := "before-limits" // a cluster below versionLimits: no checks in Apply
		if limits {
			name = "limits"
		}
		b.Run(name, func(b *testing.B) {
			f := newFSM(0)
			if limits {
				f.version = versionLimits
			}
			l := &raft.Log{Type: raft.LogCommand, Data: benchPutCommand(b)}
			b.ReportAllocs()
			for b.Loop() {
				l.Index++
				if r, ok := f.Apply(l).(*applyResult); !ok || r.err != nil {
					b.Fatalf("apply: %+v", r)
				}
			}
		})
	}
}

// BenchmarkLeaderChecks measures the checks the leader adds before it
// proposes a put a follower forwarded: the forwarded command's decode and
// checkCommand (admitForwarded), and the space quota (checkQuota's cost
// and usage).
func BenchmarkLeaderChecks(b *testing.B) {
	n := &node{fsm: newFSM(0)}
	n.cfg.QuotaBytes = 32 << 20
	cmd := benchPutCommand(b)
	b.ReportAllocs()
	for b.Loop() {
		p, err := n.admitForwarded(cmd)
		if err != nil {
			b.Fatal(err)
		}
		if err := n.checkQuota(b.Context(), p); err != nil {
			b.Fatal(err)
		}
	}
}
