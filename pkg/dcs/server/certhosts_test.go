package server

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/pgherd/pgherd/pkg/dcs"
)

// TestCertFollowsAddress changes a member's client address and restarts
// it: a TLS client that checks host names (as Patroni's urllib3 does)
// reaches it at its new address, because a data member whose host holds
// the CA reissues its certificates at start. A witness, whose host holds
// no CA key, is refused with what to run instead.
func TestCertFollowsAddress(t *testing.T) {
	p := newTestPKI(t)
	c := newCluster(t, 1, func(cfg *dcs.Config) {
		p.secure(nil)(cfg)
		cfg.CADir = p.pki.Dir
	})
	c.stop(0)
	c.cfgs[0].ListenClient = "127.0.0.2:0"
	c.restart(0)
	url := c.servers[0].ClientURL()
	if !strings.HasPrefix(url, "https://127.0.0.2:") {
		t.Fatalf("client URL %s", url)
	}
	hc := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: p.client("patroni")}}
	resp, err := hc.Get(url + "/version")
	if err != nil {
		t.Fatalf("a client checking host names against the new address: %v", err)
	}
	resp.Body.Close()

	// Without the CA: refused, naming the commands that issue new ones.
	c.stop(0)
	cfg := c.cfgs[0]
	cfg.CADir = ""
	cfg.ListenClient = "127.0.0.3:0"
	_, err = Start(testCtx(), cfg)
	if err == nil || !strings.Contains(err.Error(), "does not name 127.0.0.3, an address it serves on: issue it new certificates (on a data member's host `pgherd dcs cert renew m0`") {
		t.Fatalf("a member without the CA at a new address: %v", err)
	}
}
