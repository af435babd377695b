package mvcc

import (
	"fmt"
	"runtime"
	"testing"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
)

// patroniStatus is the size of a typical Patroni /status value with a couple of slots.
var patroniStatus = []byte(`{"optime":67108864,"slots":{"n2":67108864,"n3":67108864},"retain_slots":["n1","n2","n3"]}`)

// BenchmarkPut measures one Patroni-like write (a /status put) with a full history.
func BenchmarkPut(b *testing.B) {
	s := New(Options{})
	req := &pb.PutRequest{Key: []byte("/service/pg/status"), Value: patroniStatus}
	for range DefaultHistoryLimit {
		s.Put(req)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.Put(req); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkFullHistoryHeap reports the live heap of a store holding a Patroni cluster's keys and a full
// history (DefaultHistoryLimit revisions of /status puts): the DCS's steady-state memory. The member
// keys are 400 bytes, about what Patroni writes.
func BenchmarkFullHistoryHeap(b *testing.B) {
	for b.Loop() {
		runtime.GC()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		s := New(Options{})
		for i := range 20 {
			s.Put(&pb.PutRequest{Key: []byte(fmt.Sprintf("/service/pg/members/n%d", i)), Value: make([]byte, 400)})
		}
		for range DefaultHistoryLimit {
			s.Put(&pb.PutRequest{Key: []byte("/service/pg/status"), Value: patroniStatus})
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc), "heap-bytes")
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/DefaultHistoryLimit, "heap-bytes/rev")
		runtime.KeepAlive(s)
	}
}
