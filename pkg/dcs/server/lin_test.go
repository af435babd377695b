package server

import (
	"context"
	"fmt"
	"math"
	"math/rand"
	"sync"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// A register per key: put, get and compare-and-swap, in porcupine's KV
// model style, partitioned by key.
type linInput struct {
	op          byte // 'p' put, 'g' get, 'c' cas
	key         string
	value, from string
}

type linOutput struct {
	value   string
	ok      bool
	unknown bool // the call failed: it may or may not have happened
}

var linModel = porcupine.Model{
	Partition: func(h []porcupine.Operation) [][]porcupine.Operation {
		byKey := map[string][]porcupine.Operation{}
		for _, op := range h {
			k := op.Input.(linInput).key
			byKey[k] = append(byKey[k], op)
		}
		var out [][]porcupine.Operation
		for _, ops := range byKey {
			out = append(out, ops)
		}
		return out
	},
	Init: func() any { return "" },
	Step: func(state, input, output any) (bool, any) {
		in, out, st := input.(linInput), output.(linOutput), state.(string)
		switch in.op {
		case 'p':
			return true, in.value
		case 'g':
			return out.value == st, st
		default:
			if out.unknown {
				if st == in.from {
					return true, in.value
				}
				return true, st
			}
			if st == in.from {
				return out.ok, in.value
			}
			return !out.ok, st
		}
	},
	DescribeOperation: func(input, output any) string {
		in, out := input.(linInput), output.(linOutput)
		return fmt.Sprintf("%c(%s, %q, %q) -> %+v", in.op, in.key, in.from, in.value, out)
	},
}

// TestLinearizableUnderFaults records puts, linearizable gets and
// compare-and-swaps from several clients, each starting from a different
// member, while pgherd-dcs processes fail: the leader is SIGKILLed and
// restarted, the next leader is SIGSTOPped for four election timeouts and
// continued, and a follower is SIGKILLed and restarted from its data
// directory. porcupine checks the history; at the end every member must be
// up and caught up.
func TestLinearizableUnderFaults(t *testing.T) {
	c := newProcCluster(t, 3, nil)
	eps := c.endpoints()
	var cls []*clientv3.Client
	for id := range 4 {
		cls = append(cls, c.client(append(append([]string{}, eps[id%3:]...), eps[:id%3]...)...))
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan []porcupine.Operation)
	go func() { done <- linWorkload(ctx, cls) }()

	pause := func() { time.Sleep(1500 * time.Millisecond) }
	pause()
	l := c.leader()
	c.kill(l) // the leader, SIGKILL
	pause()
	c.start(l)
	pause()
	l = c.leader()
	c.pause(l) // the leader, SIGSTOP
	time.Sleep(4 * testHeartbeat)
	c.resume(l)
	pause()
	f := (c.leader() + 1) % len(c.members)
	c.kill(f) // a follower, restarted from its data directory
	pause()
	c.start(f)
	pause()
	cancel()
	history := <-done
	c.waitCaughtUp(20 * time.Second)

	res := porcupine.CheckOperationsTimeout(linModel, history, 60*time.Second)
	t.Logf("%d operations, result %s", len(history), res)
	if res == porcupine.Illegal {
		t.Fatalf("history of %d operations is not linearizable", len(history))
	}
	if len(history) < 100 {
		t.Fatalf("only %d operations completed", len(history))
	}
}

// linWorkload runs one client loop per client until ctx ends and returns
// the history. A failed read is dropped (it has no effect); a failed write
// may or may not have happened, so it never returns.
func linWorkload(ctx context.Context, cls []*clientv3.Client) []porcupine.Operation {
	start := time.Now()
	now := func() int64 { return int64(time.Since(start)) }
	var mu sync.Mutex
	var history []porcupine.Operation
	var wg sync.WaitGroup
	for id, cl := range cls {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewSource(int64(id)))
			for i := 0; ctx.Err() == nil; i++ {
				in := linInput{key: fmt.Sprintf("/lin/%d", rng.Intn(3)), value: fmt.Sprintf("c%d-%d", id, i)}
				op := porcupine.Operation{ClientId: id, Call: now()}
				octx, ocancel := context.WithTimeout(ctx, 2*time.Second)
				var out linOutput
				var err error
				switch r := rng.Intn(10); {
				case r < 4:
					in.op = 'p'
					_, err = cl.Put(octx, in.key, in.value)
				case r < 7:
					in.op = 'g'
					var g *clientv3.GetResponse
					if g, err = cl.Get(octx, in.key); err == nil && len(g.Kvs) > 0 {
						out.value = string(g.Kvs[0].Value)
					}
				default:
					in.op, in.from = 'c', fmt.Sprintf("c%d-%d", rng.Intn(len(cls)), rng.Intn(i+1))
					cmp := clientv3.Compare(clientv3.Value(in.key), "=", in.from)
					if rng.Intn(4) == 0 {
						in.from = ""
						cmp = clientv3.Compare(clientv3.CreateRevision(in.key), "=", 0)
					}
					var tr *clientv3.TxnResponse
					if tr, err = cl.Txn(octx).If(cmp).Then(clientv3.OpPut(in.key, in.value)).Commit(); err == nil {
						out.ok = tr.Succeeded
					}
				}
				ocancel()
				op.Return = now()
				time.Sleep(time.Duration(rng.Intn(4)) * time.Millisecond) // spread the load over the faults
				if err != nil {
					if in.op == 'g' {
						continue
					}
					out.unknown, op.Return = true, math.MaxInt64
				}
				op.Input, op.Output = in, out
				mu.Lock()
				history = append(history, op)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return history
}
