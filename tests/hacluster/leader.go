package hacluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc"
)

// LeaderKey is Patroni's leader key as one DCS member holds it.
type LeaderKey struct {
	Holder string // the member's name; "" when the key does not exist
	// CreateRevision changes each time the key is created again: a new
	// leadership, even by the same member after its lease expired.
	CreateRevision int64
}

// LeaderWatcher reads the leader key through one DCS client endpoint.
type LeaderWatcher struct {
	cli *clientv3.Client
	key string
}

// WatchLeader opens a client to the last DCS endpoint (the witness member
// with DCSPgherd, which the soak and host-death tests never disturb).
func (c *Cluster) WatchLeader() (*LeaderWatcher, error) {
	if len(c.DCSClients) == 0 {
		return nil, errors.New("no DCS client endpoint (the leader key is read on pgherd's DCS or etcd)")
	}
	cli, err := clientv3.New(clientv3.Config{
		Endpoints:   []string{"http://" + c.DCSClients[len(c.DCSClients)-1]},
		DialTimeout: 2 * time.Second,
		// From inside the witness's host when it has a namespace.
		DialOptions: []grpc.DialOption{grpc.WithContextDialer(func(ctx context.Context, addr string) (net.Conn, error) {
			return c.Opts.Hosts[2].dial(ctx, "tcp", addr)
		})},
	})
	if err != nil {
		return nil, err
	}
	return &LeaderWatcher{cli: cli, key: "/service/" + c.Opts.Scope + "/leader"}, nil
}

// Get reads the leader key (a serializable read: the witness's own view,
// so it answers even while the DCS elects a leader).
func (w *LeaderWatcher) Get(ctx context.Context) (LeaderKey, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	r, err := w.cli.Get(ctx, w.key, clientv3.WithSerializable())
	if err != nil || len(r.Kvs) == 0 {
		return LeaderKey{}, err
	}
	return LeaderKey{Holder: string(r.Kvs[0].Value), CreateRevision: r.Kvs[0].CreateRevision}, nil
}

// Close closes the client.
func (w *LeaderWatcher) Close() error { return w.cli.Close() }

// WaitSyncStandby waits until Patroni's sync key names n as the
// synchronous standby: in synchronous mode only that member may be
// promoted, and a replica that rejoined becomes it a loop or two after it
// streams.
func (c *Cluster) WaitSyncStandby(ctx context.Context, n *Node) error {
	w, err := c.WatchLeader()
	if err != nil {
		return err
	}
	defer w.Close()
	key := "/service/" + c.Opts.Scope + "/sync"
	return poll(ctx, 200*time.Millisecond, func() error {
		gctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		r, err := w.cli.Get(gctx, key, clientv3.WithSerializable())
		if err != nil {
			return err
		}
		var s struct {
			SyncStandby string `json:"sync_standby"`
		}
		if len(r.Kvs) == 1 {
			json.Unmarshal(r.Kvs[0].Value, &s)
		}
		if s.SyncStandby != n.Name {
			return fmt.Errorf("the synchronous standby is %q, not %s", s.SyncStandby, n.Name)
		}
		return nil
	})
}
