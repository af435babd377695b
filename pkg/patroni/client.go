package patroni

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"
)

// ClientConfig says how to reach one member's REST API.
type ClientConfig struct {
	URL      string     // e.g. http://127.0.1.1:8008 (a member's api_url base)
	Auth     *BasicAuth // for the writing endpoints; nil sends none
	CAFile   string     // optional: CA that signed the API's certificate
	CertFile string     // optional client certificate (with KeyFile)
	KeyFile  string
	// Timeout bounds each request whose context has no deadline: zero means
	// 5 s, and at least LongTimeout for the calls that wait for Patroni to act
	// (restart, switchover, failover). A context deadline always wins.
	Timeout time.Duration
}

// LongTimeout bounds the requests that wait for Patroni to act when their
// context has no deadline.
const LongTimeout = 90 * time.Second

// Client talks to one member's Patroni REST API, the only way pgherd acts on
// a running Patroni. Every call has a timeout; errors say which request failed
// and what Patroni answered. The REST password goes only with calls that
// change something (never a GET), and only to the REST APIs pgherd knows
// from member configuration files (see Know and ForMember).
type Client struct {
	base    string
	auth    *BasicAuth
	http    *http.Client
	timeout time.Duration
	// known are the REST API base URLs the password may go to.
	known map[string]bool
	// withheld: this member's API is not known, so its writes are refused
	// rather than sent without (or with) the password.
	withheld bool
}

// ErrUnknownMember is returned for a change sent to a member whose REST API
// pgherd knows only from the DCS.
var ErrUnknownMember = errors.New("its REST API is not one pgherd knows from a configuration file on this host")

// ClientFor returns a client for c's own REST API (its connect address,
// authentication and TLS files).
func ClientFor(c *Config) (*Client, error) {
	if c.RestAPI.ConnectAddress == "" {
		return nil, errors.New("its Patroni configuration has no restapi.connect_address")
	}
	scheme := "http"
	if c.RestAPI.CertFile != "" {
		scheme = "https"
	}
	return NewClient(ClientConfig{
		URL:    scheme + "://" + c.RestAPI.ConnectAddress,
		Auth:   c.RestAPI.Authentication,
		CAFile: c.RestAPI.CAFile,
	})
}

// NewClient returns a client for cfg. It fails only on unreadable TLS files.
func NewClient(cfg ClientConfig) (*Client, error) {
	timeout := cfg.Timeout
	if timeout == 0 {
		timeout = 5 * time.Second
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.Proxy = nil // loopback and cluster-internal addresses: never through a proxy
	if cfg.CAFile != "" || cfg.CertFile != "" {
		tc := &tls.Config{MinVersion: tls.VersionTLS12}
		if cfg.CAFile != "" {
			pem, err := os.ReadFile(cfg.CAFile)
			if err != nil {
				return nil, fmt.Errorf("cannot read the REST API's CA file: %w", err)
			}
			tc.RootCAs = x509.NewCertPool()
			if !tc.RootCAs.AppendCertsFromPEM(pem) {
				return nil, fmt.Errorf("REST API CA file %s holds no PEM certificate", cfg.CAFile)
			}
		}
		if cfg.CertFile != "" {
			cert, err := tls.LoadX509KeyPair(cfg.CertFile, cfg.KeyFile)
			if err != nil {
				return nil, fmt.Errorf("cannot load the REST API client certificate: %w", err)
			}
			tc.Certificates = []tls.Certificate{cert}
		}
		tr.TLSClientConfig = tc
	}
	base := strings.TrimRight(cfg.URL, "/")
	return &Client{
		base:    base,
		auth:    cfg.Auth,
		http:    &http.Client{Transport: tr},
		timeout: timeout,
		known:   map[string]bool{base: true},
	}, nil
}

// Know adds the REST API URLs (as ClientFor builds them from a member's
// configuration file) of other members of the cluster that pgherd knows
// from their own configuration files: ForMember gives them the password.
func (c *Client) Know(urls ...string) {
	for _, u := range urls {
		c.known[strings.TrimRight(u, "/")] = true
	}
}

// Knows reports whether m's REST API is one the client knows, to which
// ForMember gives the password.
func (c *Client) Knows(m Member) bool { return c.known[memberBase(m)] }

func memberBase(m Member) string {
	return strings.TrimSuffix(strings.TrimRight(m.APIURL, "/"), "/patroni")
}

// ForMember returns a client of another member's REST API (its api_url
// from GET /cluster) with the same TLS settings. The api_url comes from
// the member's key in the DCS, which any DCS client can write: the REST
// password goes with it only when that URL is one the client knows (its
// own, or added with Know); to any other, reads go as always (without
// credentials) and changes are refused with ErrUnknownMember.
func (c *Client) ForMember(m Member) *Client {
	base := memberBase(m)
	mc := &Client{base: base, http: c.http, timeout: c.timeout, known: c.known}
	if c.known[base] {
		mc.auth = c.auth
	} else {
		mc.withheld = c.auth != nil
	}
	return mc
}

// URL is the base URL the client talks to.
func (c *Client) URL() string { return c.base }

// StatusError is a REST API answer other than the one expected: Patroni's
// status code and body (its reason, e.g. "candidate does not exists").
type StatusError struct {
	Method, Path string
	Code         int
	Body         string
}

func (e *StatusError) Error() string {
	msg := fmt.Sprintf("Patroni %s %s answered %d %s", e.Method, e.Path, e.Code, http.StatusText(e.Code))
	if b := strings.TrimSpace(e.Body); b != "" && !strings.HasPrefix(b, "<") {
		msg += ": " + b
	}
	return msg
}

// do sends one request and returns the body when the status is one of ok.
func (c *Client) do(ctx context.Context, method, path string, in any, ok ...int) ([]byte, int, error) {
	if _, has := ctx.Deadline(); !has {
		d := c.timeout
		if long[path] && d < LongTimeout {
			d = LongTimeout
		}
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, d)
		defer cancel()
	}
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return nil, 0, fmt.Errorf("cannot encode %s %s: %w", method, path, err)
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, body)
	if err != nil {
		return nil, 0, fmt.Errorf("Patroni %s %s: %w", method, path, err)
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if writes := method != http.MethodGet && method != http.MethodHead; writes && c.withheld {
		return nil, 0, fmt.Errorf("Patroni %s %s at %s: %w (its address comes from the DCS, which does not prove who wrote it): run the change on that member's host", method, path, c.base, ErrUnknownMember)
	} else if writes && c.auth != nil {
		req.SetBasicAuth(c.auth.Username, c.auth.Password.Reveal())
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, 0, fmt.Errorf("cannot reach Patroni's REST API at %s: %w", c.base, unwrapURLError(err))
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return nil, resp.StatusCode, fmt.Errorf("Patroni %s %s: reading the answer: %w", method, path, err)
	}
	for _, code := range ok {
		if resp.StatusCode == code {
			return b, resp.StatusCode, nil
		}
	}
	return b, resp.StatusCode, &StatusError{Method: method, Path: path, Code: resp.StatusCode, Body: string(b)}
}

// long are the endpoints that answer only once Patroni has acted.
var long = map[string]bool{"/restart": true, "/switchover": true, "/failover": true, "/reinitialize": true}

// unwrapURLError drops url.Error's `Get "http://...":` prefix, which would
// repeat the address.
func unwrapURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

func (c *Client) getJSON(ctx context.Context, path string, out any) error {
	b, _, err := c.do(ctx, http.MethodGet, path, nil, http.StatusOK)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(b, out); err != nil {
		return fmt.Errorf("Patroni GET %s: unexpected answer: %w", path, err)
	}
	return nil
}

// Lag is how far a replica is behind the leader, as Patroni reports it in
// GET /cluster: a number of bytes, or "unknown". The leader has no lag (a nil
// *Lag in Member).
type Lag struct {
	Bytes   int64
	Unknown bool
}

// UnmarshalJSON accepts a number or a string ("unknown").
func (l *Lag) UnmarshalJSON(b []byte) error {
	var n int64
	if err := json.Unmarshal(b, &n); err == nil {
		*l = Lag{Bytes: n}
		return nil
	}
	*l = Lag{Unknown: true}
	return nil
}

// MarshalJSON writes what Patroni sent: a number of bytes or "unknown".
func (l Lag) MarshalJSON() ([]byte, error) {
	if l.Unknown {
		return []byte(`"unknown"`), nil
	}
	return []byte(strconv.FormatInt(l.Bytes, 10)), nil
}

// MB is the lag in MiB rounded as patronictl list does; ok is false when
// Patroni does not know it.
func (l Lag) MB() (mb int64, ok bool) {
	if l.Unknown {
		return 0, false
	}
	return MiB(l.Bytes), true
}

// MiB is a number of bytes in MiB, rounded as patronictl list does.
func MiB(b int64) int64 { return (b + 1<<19) >> 20 }

// Member is one entry of GET /cluster.
type Member struct {
	Name           string `json:"name"`
	Host           string `json:"host"`
	Port           int    `json:"port"`
	Role           string `json:"role"`  // leader, replica, sync_standby, standby_leader
	State          string `json:"state"` // running, starting, stopped, crashed...
	APIURL         string `json:"api_url"`
	Timeline       int    `json:"timeline,omitempty"`
	Lag            *Lag   `json:"lag,omitempty"`
	PendingRestart bool   `json:"pending_restart,omitempty"`
}

// Cluster is GET /cluster: the members sorted by name, and whether the
// cluster is paused.
type Cluster struct {
	Members []Member `json:"members"`
	Pause   bool     `json:"pause,omitempty"`
}

// Leader returns the leader member, if there is one.
func (c *Cluster) Leader() (Member, bool) {
	for _, m := range c.Members {
		if m.Role == "leader" || m.Role == "standby_leader" {
			return m, true
		}
	}
	return Member{}, false
}

// Cluster returns the cluster as this member sees it in the DCS.
func (c *Client) Cluster(ctx context.Context) (*Cluster, error) {
	var cl Cluster
	if err := c.getJSON(ctx, "/cluster", &cl); err != nil {
		return nil, err
	}
	return &cl, nil
}

// Status is GET /patroni: this member's own view.
type Status struct {
	State             string `json:"state"`
	Role              string `json:"role"` // master (Patroni 3.0's word for primary) or replica
	ServerVersion     int    `json:"server_version"`
	Timeline          int    `json:"timeline"`
	PendingRestart    bool   `json:"pending_restart"`
	Pause             bool   `json:"pause"`
	ClusterUnlocked   bool   `json:"cluster_unlocked"`
	PostmasterStarted string `json:"postmaster_start_time"`
	Patroni           struct {
		Version string `json:"version"`
		Scope   string `json:"scope"`
	} `json:"patroni"`
	Replication []struct {
		Username        string `json:"usename"`
		ApplicationName string `json:"application_name"`
		ClientAddr      string `json:"client_addr"`
		State           string `json:"state"`
		SyncState       string `json:"sync_state"`
	} `json:"replication"`
}

// Patroni returns GET /patroni. Patroni answers 503 with a full body when
// PostgreSQL is not running; that is still a status, not an error.
func (c *Client) Patroni(ctx context.Context) (*Status, error) {
	b, _, err := c.do(ctx, http.MethodGet, "/patroni", nil, http.StatusOK, http.StatusServiceUnavailable)
	if err != nil {
		return nil, err
	}
	var s Status
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, fmt.Errorf("Patroni GET /patroni: unexpected answer: %w", err)
	}
	return &s, nil
}

// Readiness returns nil when the member is ready: it is the leader, or its
// PostgreSQL runs and it sees the DCS.
func (c *Client) Readiness(ctx context.Context) error {
	_, _, err := c.do(ctx, http.MethodGet, "/readiness", nil, http.StatusOK)
	return err
}

// Liveness returns nil when Patroni's HA loop is alive.
func (c *Client) Liveness(ctx context.Context) error {
	_, _, err := c.do(ctx, http.MethodGet, "/liveness", nil, http.StatusOK)
	return err
}

// Config returns the cluster-wide (dynamic) configuration.
func (c *Client) Config(ctx context.Context) (map[string]any, error) {
	var m map[string]any
	if err := c.getJSON(ctx, "/config", &m); err != nil {
		return nil, err
	}
	return m, nil
}

// PatchConfig merges patch into the cluster-wide configuration (a JSON null
// removes a key) and returns the result. Every member applies it on its next
// HA loop.
func (c *Client) PatchConfig(ctx context.Context, patch map[string]any) (map[string]any, error) {
	b, _, err := c.do(ctx, http.MethodPatch, "/config", patch, http.StatusOK)
	if err != nil {
		return nil, err
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("Patroni PATCH /config: unexpected answer: %w", err)
	}
	return m, nil
}

// SetClusterParameters sets cluster-wide PostgreSQL parameters through PATCH
// /config; a nil value removes the parameter (back to its default). Values
// Patroni would silently ignore are refused first (see CheckClusterWide).
func (c *Client) SetClusterParameters(ctx context.Context, params map[string]*string) error {
	p := map[string]any{}
	for k, v := range params {
		if v == nil {
			p[k] = nil
			continue
		}
		if err := CheckClusterWide(k, *v); err != nil {
			return err
		}
		p[k] = *v
	}
	_, err := c.PatchConfig(ctx, map[string]any{"postgresql": map[string]any{"parameters": p}})
	return err
}

// Pause stops automatic failover cluster-wide (maintenance mode).
func (c *Client) Pause(ctx context.Context) error {
	_, err := c.PatchConfig(ctx, map[string]any{"pause": true})
	return err
}

// Resume ends maintenance mode.
func (c *Client) Resume(ctx context.Context) error {
	_, err := c.PatchConfig(ctx, map[string]any{"pause": false})
	return err
}

// WaitHealthy waits until the cluster has a leader and every member is
// running (after a switchover, a failover or a reinit the old leader or the
// rebuilt member takes a while to come back), or ctx ends. It returns the
// last view of the cluster.
func (c *Client) WaitHealthy(ctx context.Context) (*Cluster, error) {
	for {
		cl, err := c.Cluster(ctx)
		if err == nil {
			err = healthy(cl)
		}
		if err == nil {
			return cl, nil
		}
		select {
		case <-ctx.Done():
			return cl, fmt.Errorf("%w (%v)", ctx.Err(), err)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// WaitRestarted waits until this member's PostgreSQL runs with a start
// time other than before (the postmaster_start_time of GET /patroni before
// a reinit or a restart), or ctx ends.
func (c *Client) WaitRestarted(ctx context.Context, before string) error {
	for {
		st, err := c.Patroni(ctx)
		if err == nil && (st.State != "running" || st.PostmasterStarted == before) {
			err = fmt.Errorf("PostgreSQL is %s", st.State)
		}
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w (%v)", ctx.Err(), err)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func healthy(cl *Cluster) error {
	if _, ok := cl.Leader(); !ok {
		return errors.New("no leader")
	}
	for _, m := range cl.Members {
		if m.State != "running" {
			return fmt.Errorf("member %s is %s", m.Name, m.State)
		}
	}
	return nil
}

// WaitPaused waits until every member of the cluster reports pause == want
// in GET /patroni (each applies a change of /config on its next HA loop),
// or ctx ends.
func (c *Client) WaitPaused(ctx context.Context, want bool) error {
	for {
		err := c.allPaused(ctx, want)
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w (%v)", ctx.Err(), err)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func (c *Client) allPaused(ctx context.Context, want bool) error {
	cl, err := c.Cluster(ctx)
	if err != nil {
		return err
	}
	for _, m := range cl.Members {
		st, err := c.ForMember(m).Patroni(ctx)
		if err != nil {
			return err
		}
		if st.Pause != want {
			return fmt.Errorf("member %s does not see the change yet", m.Name)
		}
	}
	return nil
}

// Reload makes Patroni re-read its YAML and reload PostgreSQL.
func (c *Client) Reload(ctx context.Context) error {
	_, _, err := c.do(ctx, http.MethodPost, "/reload", nil, http.StatusAccepted, http.StatusOK)
	return err
}

// RestartRequest filters POST /restart; zero values are left out.
type RestartRequest struct {
	RestartPending bool   `json:"restart_pending,omitempty"` // only if a restart is pending
	Role           string `json:"role,omitempty"`            // only if the member has this role
	Timeout        int    `json:"timeout,omitempty"`         // seconds
}

// Restart restarts this member's PostgreSQL through Patroni and returns
// Patroni's message. It waits for Patroni's answer, so the client's timeout
// must cover a PostgreSQL restart.
func (c *Client) Restart(ctx context.Context, r RestartRequest) (string, error) {
	b, _, err := c.do(ctx, http.MethodPost, "/restart", r, http.StatusOK)
	return string(b), err
}

// Switchover moves the leader role from leader to candidate ("" lets Patroni
// choose) and returns Patroni's message once it has happened. Patroni polls
// for up to max(10 s, loop_wait) before it answers.
func (c *Client) Switchover(ctx context.Context, leader, candidate string) (string, error) {
	in := map[string]string{"leader": leader}
	if candidate != "" {
		in["candidate"] = candidate
	}
	b, _, err := c.do(ctx, http.MethodPost, "/switchover", in, http.StatusOK)
	return string(b), err
}

// Failover makes candidate the leader even without a healthy leader.
func (c *Client) Failover(ctx context.Context, candidate string) (string, error) {
	b, _, err := c.do(ctx, http.MethodPost, "/failover", map[string]string{"candidate": candidate}, http.StatusOK)
	return string(b), err
}

// Reinitialize rebuilds this member (a replica) from the leader; force
// cancels a running Patroni task first.
func (c *Client) Reinitialize(ctx context.Context, force bool) (string, error) {
	b, _, err := c.do(ctx, http.MethodPost, "/reinitialize", map[string]bool{"force": force}, http.StatusOK)
	return string(b), err
}
