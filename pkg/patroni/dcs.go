package patroni

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Patroni keeps a cluster under <namespace>/<scope>/ in the DCS: "initialize"
// (the system identifier, once bootstrapped), "leader" (the leader's name,
// under a lease), "members/<name>" (one per running member, under a
// lease), "config" (the dynamic configuration) and a few more. pgherd reads
// them through etcd's v3 JSON gateway (the same API Patroni's etcd3 client
// uses), so it needs no etcd client library and works the same on pgherd's
// embedded store.

// DefaultNamespace is Patroni's default key prefix.
const DefaultNamespace = "/service"

// DCSState is what the DCS holds about one cluster.
type DCSState struct {
	Initialized bool        // the cluster has been bootstrapped
	Leader      string      // the current leader ("" when none)
	Members     []DCSMember // members with a live key, sorted by name
}

// DCSMember is a member key. A member that stopped cleanly keeps its key
// (state "stopped") until its lease expires, one TTL later.
type DCSMember struct {
	Name  string
	State string // running, starting, stopped...
}

// Active returns the members whose state is not "stopped", other than
// except.
func (s DCSState) Active(except string) []string {
	var out []string
	for _, m := range s.Members {
		if m.State != "stopped" && m.Name != except {
			out = append(out, m.Name)
		}
	}
	return out
}

// etcdGateway is a minimal client of etcd's v3 JSON gateway.
type etcdGateway struct {
	urls []string
	http *http.Client
}

func newEtcdGateway(e Etcd3, timeout time.Duration) (*etcdGateway, error) {
	scheme := e.Protocol
	if scheme == "" {
		scheme = "http"
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.Proxy = nil
	if scheme == "https" {
		tc := &tls.Config{MinVersion: tls.VersionTLS12}
		if e.CACert != "" {
			pem, err := os.ReadFile(e.CACert)
			if err != nil {
				return nil, fmt.Errorf("cannot read the DCS CA file: %w", err)
			}
			tc.RootCAs = x509.NewCertPool()
			tc.RootCAs.AppendCertsFromPEM(pem)
		}
		if e.Cert != "" {
			cert, err := tls.LoadX509KeyPair(e.Cert, e.Key)
			if err != nil {
				return nil, fmt.Errorf("cannot load the DCS client certificate: %w", err)
			}
			tc.Certificates = []tls.Certificate{cert}
		}
		tr.TLSClientConfig = tc
		// HTTP/1.1, as Patroni's urllib3: the embedded DCS's client port
		// serves the gateway over HTTP/2 only without TLS (its gRPC
		// sniffing answers an HTTP/2 client first).
		tr.ForceAttemptHTTP2 = false
	}
	g := &etcdGateway{http: &http.Client{Transport: tr, Timeout: timeout}}
	for _, h := range e.Hosts {
		g.urls = append(g.urls, scheme+"://"+h)
	}
	if len(g.urls) == 0 {
		return nil, errors.New("no DCS hosts configured: set patroni.dcs.hosts in site.yaml")
	}
	return g, nil
}

// call posts in to path on the first endpoint that answers.
func (g *etcdGateway) call(ctx context.Context, path string, in, out any) error {
	body, err := json.Marshal(in)
	if err != nil {
		return err
	}
	var errs []string
	for _, u := range g.urls {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, u+path, bytes.NewReader(body))
		if err != nil {
			return err
		}
		req.Header.Set("Content-Type", "application/json")
		resp, err := g.http.Do(req)
		if err != nil {
			errs = append(errs, unwrapURLError(err).Error())
			continue
		}
		b, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
		resp.Body.Close()
		if err != nil {
			errs = append(errs, err.Error())
			continue
		}
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("DCS %s%s answered %d: %s", u, path, resp.StatusCode, strings.TrimSpace(string(b)))
		}
		return json.Unmarshal(b, out)
	}
	return fmt.Errorf("no DCS endpoint answers (%s): start the DCS or fix patroni.dcs.hosts in site.yaml", strings.Join(errs, "; "))
}

// prefixEnd is etcd's range end for "every key starting with p".
func prefixEnd(p string) string {
	b := []byte(p)
	for i := len(b) - 1; i >= 0; i-- {
		if b[i] < 0xff {
			b[i]++
			return string(b[:i+1])
		}
	}
	return "\x00"
}

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

// ClusterPrefix is the DCS key prefix of c's cluster, e.g. "/service/main/".
func ClusterPrefix(c *Config) string { return clusterPrefix(c.Namespace, c.Scope) }

func clusterPrefix(namespace, scope string) string {
	if namespace == "" {
		namespace = DefaultNamespace
	}
	return "/" + strings.Trim(namespace, "/") + "/" + scope + "/"
}

// ReadDCSState reads what the DCS (c.Etcd3) holds about c's cluster. It
// tells a first member (bootstrap) from a joining one, and finds a member
// name already in use.
func ReadDCSState(ctx context.Context, c *Config) (DCSState, error) {
	g, err := newEtcdGateway(c.Etcd3, 5*time.Second)
	if err != nil {
		return DCSState{}, err
	}
	p := clusterPrefix(c.Namespace, c.Scope)
	var out struct {
		Kvs []struct {
			Key   string `json:"key"`
			Value string `json:"value"`
		} `json:"kvs"`
	}
	if err := g.call(ctx, "/v3/kv/range", map[string]string{"key": b64(p), "range_end": b64(prefixEnd(p))}, &out); err != nil {
		return DCSState{}, err
	}
	var st DCSState
	for _, kv := range out.Kvs {
		k, _ := base64.StdEncoding.DecodeString(kv.Key)
		v, _ := base64.StdEncoding.DecodeString(kv.Value)
		switch name := strings.TrimPrefix(string(k), p); {
		case name == "initialize":
			st.Initialized = true
		case name == "leader":
			st.Leader = string(v)
		case strings.HasPrefix(name, "members/"):
			m := DCSMember{Name: strings.TrimPrefix(name, "members/")}
			var data struct {
				State string `json:"state"`
			}
			if json.Unmarshal(v, &data) == nil {
				m.State = data.State
			}
			st.Members = append(st.Members, m)
		}
	}
	sort.Slice(st.Members, func(i, j int) bool { return st.Members[i].Name < st.Members[j].Name })
	return st, nil
}

// PurgeDCS deletes every key of c's cluster from the DCS (what `instance
// drop --purge-cluster` does after the last member is gone) and returns how
// many it deleted.
func PurgeDCS(ctx context.Context, c *Config) (int64, error) {
	g, err := newEtcdGateway(c.Etcd3, 5*time.Second)
	if err != nil {
		return 0, err
	}
	p := clusterPrefix(c.Namespace, c.Scope)
	var out struct {
		Deleted string `json:"deleted"` // int64 as a JSON string
	}
	if err := g.call(ctx, "/v3/kv/deleterange", map[string]string{"key": b64(p), "range_end": b64(prefixEnd(p))}, &out); err != nil {
		return 0, err
	}
	n, _ := strconv.ParseInt(out.Deleted, 10, 64)
	return n, nil
}

// ResetDCS deletes every key of c's cluster but its dynamic configuration
// ("config": the cluster-wide parameters and pg_hba), in one transaction,
// and returns how many it deleted. Patroni started on a member's data
// then registers the cluster anew with that data (no "initialize" key),
// with no leader, member, history or last-known position left from
// before; it keeps the configuration the cluster had.
func ResetDCS(ctx context.Context, c *Config) (int64, error) {
	g, err := newEtcdGateway(c.Etcd3, 5*time.Second)
	if err != nil {
		return 0, err
	}
	// Every key before "config", then every key after it: one
	// transaction (etcd refuses a put of a key a delete in the same
	// transaction covers).
	p := clusterPrefix(c.Namespace, c.Scope)
	del := func(from, to string) map[string]any {
		return map[string]any{"request_delete_range": map[string]string{"key": b64(from), "range_end": b64(to)}}
	}
	txn := map[string]any{"success": []any{del(p, p+"config"), del(p+"config\x00", prefixEnd(p))}}
	var out struct {
		Responses []struct {
			DeleteRange struct {
				Deleted string `json:"deleted"`
			} `json:"response_delete_range"`
		} `json:"responses"`
	}
	if err := g.call(ctx, "/v3/kv/txn", txn, &out); err != nil {
		return 0, err
	}
	var n int64
	for _, r := range out.Responses {
		d, _ := strconv.ParseInt(r.DeleteRange.Deleted, 10, 64)
		n += d
	}
	return n, nil
}

// CheckDCSReachable returns nil once one of c's DCS hosts accepts a TCP
// connection, trying every 200 ms for up to wait; then an error lists each
// host's failure: Patroni would only loop waiting for it.
func CheckDCSReachable(ctx context.Context, c *Config, wait time.Duration) error {
	deadline := time.Now().Add(wait)
	for {
		var errs []string
		d := net.Dialer{Timeout: time.Second}
		for _, h := range c.Etcd3.Hosts {
			conn, err := d.DialContext(ctx, "tcp", h)
			if err == nil {
				conn.Close()
				return nil
			}
			errs = append(errs, err.Error())
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("the DCS does not answer after %s (%s): start it or fix patroni.dcs.hosts in site.yaml", wait, strings.Join(errs, "; "))
		}
		time.Sleep(200 * time.Millisecond)
	}
}
