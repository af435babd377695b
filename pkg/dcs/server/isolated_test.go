package server

import (
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
)

// A member that has lost its leader must not serve its possibly stale
// state: serializable reads fail with "no leader" and watch streams end,
// so that a client's cache (Patroni's) cannot go on believing an old view.
func TestIsolatedMemberServesNoStaleState(t *testing.T) {
	c := newCluster(t, 3, nil)
	ctx := ctxT(t, 60*time.Second)
	put, err := c.client().Put(ctx, "/leader", "n1")
	if err != nil {
		t.Fatal(err)
	}
	survivor := (c.leader() + 1) % 3
	cl := c.client(c.servers[survivor].ClientURL())
	// The watch starts after the put only once the survivor applied it.
	waitFor(t, 10*time.Second, "the survivor to apply the put", func() bool {
		return c.servers[survivor].node.fsm.store.Rev() >= put.Header.Revision
	})
	w := cl.Watch(ctx, "/leader")

	for i := range c.servers {
		if i != survivor {
			c.stop(i)
		}
	}
	// Through the JSON gateway, as Patroni asks (clientv3 would retry).
	url := c.servers[survivor].ClientURL() + "/v3/kv/range"
	var last string
	waitFor(t, 10*time.Second, "serializable reads to be refused", func() bool {
		resp, err := http.Post(url, "application/json", strings.NewReader(`{"key":"L2xlYWRlcg==","serializable":true}`))
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		last = string(b)
		return resp.StatusCode != http.StatusOK && strings.Contains(last, rpctypes.ErrNoLeader.Error())
	})
	if strings.Contains(last, "kvs") {
		t.Errorf("stale read served: %s", last)
	}
	select {
	case resp, ok := <-w:
		if ok && resp.Err() == nil && !resp.Canceled {
			t.Errorf("the watch went on after the leader was lost: %+v", resp)
		}
	case <-time.After(10 * time.Second):
		t.Error("the watch on a member without a leader neither ended nor failed")
	}
}
