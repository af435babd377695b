package patroni

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/pgherd/pgherd/pkg/dcs/gateway"
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

// dcsGateway returns a client of the JSON gateway of e's DCS, each
// request bounded by timeout.
func dcsGateway(e Etcd3, timeout time.Duration) (*gateway.Client, error) {
	scheme := e.Protocol
	if scheme == "" {
		scheme = "http"
	}
	var tc *tls.Config
	if scheme == "https" {
		tc = &tls.Config{MinVersion: tls.VersionTLS12}
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
	}
	var urls []string
	for _, h := range e.Hosts {
		urls = append(urls, scheme+"://"+h)
	}
	if len(urls) == 0 {
		return nil, errors.New("no DCS hosts configured: set patroni.dcs.hosts in site.yaml")
	}
	return gateway.New(gateway.Config{Endpoints: urls, TLS: tc, Timeout: timeout, What: "DCS"})
}

// explainDCS adds what to do to an error that no DCS host answered.
func explainDCS(err error) error {
	var ue *gateway.UnreachableError
	if errors.As(err, &ue) {
		return fmt.Errorf("%w: start the DCS or fix patroni.dcs.hosts in site.yaml", err)
	}
	return err
}

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
	g, err := dcsGateway(c.Etcd3, 5*time.Second)
	if err != nil {
		return DCSState{}, err
	}
	defer g.Close()
	p := clusterPrefix(c.Namespace, c.Scope)
	kvs, err := g.Range(ctx, p, false)
	if err != nil {
		return DCSState{}, explainDCS(err)
	}
	var st DCSState
	for _, kv := range kvs {
		switch name := strings.TrimPrefix(string(kv.Key), p); {
		case name == "initialize":
			st.Initialized = true
		case name == "leader":
			st.Leader = string(kv.Value)
		case strings.HasPrefix(name, "members/"):
			m := DCSMember{Name: strings.TrimPrefix(name, "members/")}
			var data struct {
				State string `json:"state"`
			}
			if json.Unmarshal(kv.Value, &data) == nil {
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
	g, err := dcsGateway(c.Etcd3, 5*time.Second)
	if err != nil {
		return 0, err
	}
	defer g.Close()
	n, err := g.DeletePrefix(ctx, clusterPrefix(c.Namespace, c.Scope))
	return n, explainDCS(err)
}

// ResetDCS deletes every key of c's cluster but its dynamic configuration
// ("config": the cluster-wide parameters and pg_hba), in one transaction,
// and returns how many it deleted. Patroni started on a member's data
// then registers the cluster anew with that data (no "initialize" key),
// with no leader, member, history or last-known position left from
// before; it keeps the configuration the cluster had.
func ResetDCS(ctx context.Context, c *Config) (int64, error) {
	g, err := dcsGateway(c.Etcd3, 5*time.Second)
	if err != nil {
		return 0, err
	}
	defer g.Close()
	// Every key before "config", then every key after it: one
	// transaction (etcd refuses a put of a key a delete in the same
	// transaction covers).
	type deleteRange struct {
		Key      []byte `json:"key"`
		RangeEnd []byte `json:"range_end"`
	}
	type op struct {
		DeleteRange deleteRange `json:"request_delete_range"`
	}
	p := clusterPrefix(c.Namespace, c.Scope)
	txn := struct {
		Success []op `json:"success"`
	}{[]op{
		{deleteRange{[]byte(p), []byte(p + "config")}},
		{deleteRange{[]byte(p + "config\x00"), gateway.PrefixEnd([]byte(p))}},
	}}
	var out struct {
		Responses []struct {
			DeleteRange struct {
				Deleted string `json:"deleted"` // an int64, as a JSON string
			} `json:"response_delete_range"`
		} `json:"responses"`
	}
	if err := g.Call(ctx, "/v3/kv/txn", txn, &out); err != nil {
		return 0, explainDCS(err)
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
