package server

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/pgherd/pgherd/pkg/dcs"
)

// TestSwitchToTLS switches a running plain-TCP cluster to mutual TLS the
// way `pgherd dcs tls enable` does: each member restarted with
// certificates and accept_plain (both kinds of client served, peers dialled
// with TLS first), then each restarted TLS-only. The cluster keeps a
// leader and takes writes after every restart; at the end a client
// without a certificate is refused and one with it is served.
func TestSwitchToTLS(t *testing.T) {
	c := newCluster(t, 3, nil)
	p := newTestPKI(t)
	clientTLS := p.client("patroni")
	put := func(step string) {
		t.Helper()
		// Through each member in turn: every one takes writes.
		for _, ep := range c.endpoints() {
			cfg := clientv3.Config{Endpoints: []string{ep}, DialTimeout: 2 * time.Second}
			if strings.HasPrefix(ep, "https://") {
				cfg.TLS = clientTLS
			}
			waitFor(t, 20*time.Second, "a write through "+ep+" after "+step, func() bool {
				cl, err := clientv3.New(cfg)
				if err != nil {
					return false
				}
				defer cl.Close()
				ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
				defer cancel()
				_, err = cl.Put(ctx, "/switch", step)
				return err == nil
			})
		}
	}
	for i := range c.cfgs {
		c.stop(i)
		cfg := &c.cfgs[i]
		cfg.PeerTLS, cfg.ClientTLS = p.member(cfg.Name, dcs.RoleData)
		cfg.AcceptPlain = true
		c.restart(i)
		put(fmt.Sprintf("%s accepts both", cfg.Name))
	}
	// Every member serves both: a plain client and a TLS client.
	plain := "http://" + hostPort(c.servers[1].ClientURL())
	if resp, err := http.Get(plain + "/version"); err != nil || resp.StatusCode != 200 {
		t.Fatalf("a plain client during the switch: %v", err)
	}
	for i := range c.cfgs {
		c.stop(i)
		c.cfgs[i].AcceptPlain = false
		c.restart(i)
		put(fmt.Sprintf("%s speaks TLS only", c.cfgs[i].Name))
	}
	c.waitVoters(3)
	if _, err := (&http.Client{Timeout: 2 * time.Second}).Get(plain + "/version"); err == nil {
		t.Fatal("a plain client was served once every member speaks TLS")
	}
	ac, err := dcs.NewAdminClient(c.servers[0].PeerAddr(), p.admin())
	if err != nil {
		t.Fatal(err)
	}
	defer ac.Close()
	// Each member publishes its URLs through the log once restarted: wait
	// for every member's to say https.
	deadline := time.Now().Add(15 * time.Second)
	for {
		ms, err := ac.Members(ctxT(t, 10*time.Second))
		if err != nil || len(ms) != 3 {
			t.Fatalf("members: %+v %v", ms, err)
		}
		var plainURL string
		for _, m := range ms {
			if !strings.HasPrefix(m.ClientURL, "https://") || !strings.HasPrefix(m.PeerURL, "https://") {
				plainURL = fmt.Sprintf("member %s advertises %s and %s", m.Name, m.PeerURL, m.ClientURL)
			}
		}
		if plainURL == "" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal(plainURL)
		}
		time.Sleep(100 * time.Millisecond)
	}
	// A plain peer connection is refused too.
	if _, err := dcs.NewPeerClient(c.servers[2].PeerAddr(), nil).Call(ctxT(t, 5*time.Second), dcs.RPCInfo, nil); err == nil {
		t.Fatal("a plain peer call was answered once every member speaks TLS")
	}
}
