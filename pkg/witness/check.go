package witness

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/url"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/pgherd/pgherd/pkg/dcs/gateway"
	"github.com/pgherd/pgherd/pkg/patroni"
)

// Health is what `witness check` reports about each Patroni cluster
// whose keys the DCS holds.
type Health struct {
	Clusters []ClusterHealth `json:"clusters"`
}

// ClusterHealth is one Patroni cluster seen from the witness.
type ClusterHealth struct {
	Scope    string         `json:"scope"`
	Leader   string         `json:"leader"` // holder of the leader key; "" when none
	Timeline int            `json:"timeline"`
	Healthy  int            `json:"healthy"` // members whose REST API and PostgreSQL port both answer
	Total    int            `json:"total"`
	Members  []MemberHealth `json:"members"`
}

// MemberHealth is one data member: whether its Patroni REST API and its
// PostgreSQL port answer from here, and its state and lag as Patroni
// reports them.
type MemberHealth struct {
	Name       string `json:"name"`
	Role       string `json:"role"`
	State      string `json:"state"`
	APIURL     string `json:"api_url"`
	APIOK      bool   `json:"api_ok"`
	PostgreSQL string `json:"postgresql"` // HOST:PORT
	PGOK       bool   `json:"postgresql_ok"`
	Timeline   int    `json:"timeline"`
	LagBytes   *int64 `json:"lag_bytes"` // nil on the leader or when unknown
	Error      string `json:"error"`     // "" when both answer
}

// memberKey is the JSON Patroni keeps under <namespace>/<scope>/members/<name>.
type memberKey struct {
	ConnURL  string `json:"conn_url"`
	APIURL   string `json:"api_url"`
	State    string `json:"state"`
	Role     string `json:"role"`
	Timeline int    `json:"timeline"`
}

// Check reads the Patroni clusters from the DCS through the witness called
// name (configured on this host), then reaches every data member's REST
// API and PostgreSQL port from here, as the members would need a witness
// to see them. namespace is Patroni's key prefix ("" means /service).
func Check(ctx context.Context, env *Env, name, namespace string) (*Health, error) {
	cfg, err := env.LoadWitness(name)
	if err != nil {
		return nil, err
	}
	if namespace == "" {
		namespace = patroni.DefaultNamespace
	}
	namespace = "/" + strings.Trim(namespace, "/") + "/"
	endpoint := cfg.ClientURL()
	tc, err := cfg.ClientTLS.Client()
	if err != nil {
		return nil, err
	}
	gw, err := gateway.New(gateway.Config{Endpoints: []string{strings.TrimSuffix(endpoint, "/")}, TLS: tc, Timeout: 3 * time.Second, What: "witness"})
	if err != nil {
		return nil, err
	}
	defer gw.Close()
	// A linearizable read first; without a quorum, what this member holds.
	kvs, err := gw.Range(ctx, namespace, false)
	if err != nil {
		kvs, err = gw.Range(ctx, namespace, true)
	}
	if err != nil {
		return nil, fmt.Errorf("read Patroni's keys from witness %s at %s: %w", name, endpoint, err)
	}
	clusters := map[string]*ClusterHealth{}
	get := func(scope string) *ClusterHealth {
		if clusters[scope] == nil {
			clusters[scope] = &ClusterHealth{Scope: scope}
		}
		return clusters[scope]
	}
	for _, kv := range kvs {
		parts := strings.Split(strings.TrimPrefix(string(kv.Key), namespace), "/")
		switch {
		case len(parts) == 2 && parts[1] == "leader":
			get(parts[0]).Leader = string(kv.Value)
		case len(parts) == 3 && parts[1] == "members":
			var mk memberKey
			if json.Unmarshal(kv.Value, &mk) != nil {
				continue
			}
			get(parts[0]).Members = append(get(parts[0]).Members, MemberHealth{Name: parts[2], Role: patroni.Role(mk.Role), State: mk.State,
				APIURL: mk.APIURL, PostgreSQL: hostPortOf(mk.ConnURL), Timeline: mk.Timeline})
		}
	}
	h := &Health{Clusters: []ClusterHealth{}}
	for _, c := range clusters {
		probe(ctx, c)
		h.Clusters = append(h.Clusters, *c)
	}
	sort.Slice(h.Clusters, func(i, j int) bool { return h.Clusters[i].Scope < h.Clusters[j].Scope })
	return h, nil
}

// probe reaches every member of c in parallel and fills the counts, the
// timeline and the lag (from the leader's GET /cluster).
func probe(ctx context.Context, c *ClusterHealth) {
	var wg sync.WaitGroup
	for i := range c.Members {
		wg.Add(1)
		go func(m *MemberHealth) {
			defer wg.Done()
			pctx, cancel := context.WithTimeout(ctx, 3*time.Second)
			defer cancel()
			if m.PostgreSQL != "" {
				d := net.Dialer{}
				if conn, err := d.DialContext(pctx, "tcp", m.PostgreSQL); err == nil {
					m.PGOK = true
					conn.Close()
				} else {
					m.Error = "postgresql: " + err.Error()
				}
			}
			client, err := patroni.NewClient(patroni.ClientConfig{URL: apiBase(m.APIURL), Timeout: 3 * time.Second})
			if err != nil {
				m.Error = err.Error()
				return
			}
			st, err := client.Patroni(pctx)
			if err != nil {
				m.Error = strings.TrimPrefix(m.Error+"; ", "; ") + "rest api: " + err.Error()
				return
			}
			m.APIOK, m.State, m.Timeline = true, st.State, st.Timeline
		}(&c.Members[i])
	}
	wg.Wait()
	sort.Slice(c.Members, func(i, j int) bool { return c.Members[i].Name < c.Members[j].Name })
	c.Total = len(c.Members)
	for _, m := range c.Members {
		if m.APIOK && m.PGOK && m.State == "running" {
			c.Healthy++
		}
		if m.Name == c.Leader {
			c.Timeline = m.Timeline
		}
	}
	// Lag as Patroni computes it: from any member that answers, the
	// leader's preferably.
	for _, m := range c.Members {
		if !m.APIOK || (m.Name != c.Leader && c.Leader != "") {
			continue
		}
		client, err := patroni.NewClient(patroni.ClientConfig{URL: apiBase(m.APIURL), Timeout: 3 * time.Second})
		if err != nil {
			continue
		}
		cl, err := client.Cluster(ctx)
		if err != nil {
			continue
		}
		for _, pm := range cl.Members {
			for i := range c.Members {
				if c.Members[i].Name == pm.Name && pm.Lag != nil && !pm.Lag.Unknown {
					lag := pm.Lag.Bytes
					c.Members[i].LagBytes = &lag
				}
			}
		}
		break
	}
}

// apiBase turns Patroni's api_url (http://host:port/patroni) into the
// REST API's base URL.
func apiBase(apiURL string) string {
	u, err := url.Parse(apiURL)
	if err != nil {
		return apiURL
	}
	u.Path = ""
	return u.String()
}

// hostPortOf returns HOST:PORT of a postgres:// URL.
func hostPortOf(connURL string) string {
	u, err := url.Parse(connURL)
	if err != nil {
		return ""
	}
	if u.Port() == "" {
		return net.JoinHostPort(u.Hostname(), "5432")
	}
	return u.Host
}
