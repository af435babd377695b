package patroni

import (
	"context"
	"fmt"
	"net"
	"os"
	"sort"
	"syscall"
	"time"

	"github.com/pgherd/pgherd/pkg/safefs"
)

// SetLocalParameters changes this member's own PostgreSQL parameters in its
// YAML at path (a nil value removes one) and rewrites the file atomically,
// keeping its owner. Cluster-wide parameters are refused: Patroni ignores
// them there; they go through Client.SetClusterParameters. Patroni applies
// the file on Client.Reload. It returns the names whose value changed,
// sorted.
func SetLocalParameters(path string, params map[string]*string) ([]string, error) {
	for k := range params {
		if IsClusterWide(k) {
			return nil, fmt.Errorf("%s is a cluster-wide parameter in Patroni: change it for every member (PATCH /config), not in one member's configuration", k)
		}
	}
	c, err := ReadFile(path)
	if err != nil {
		return nil, err
	}
	if c.PostgreSQL.Parameters == nil {
		c.PostgreSQL.Parameters = map[string]string{}
	}
	var changed []string
	for k, v := range params {
		old, had := c.PostgreSQL.Parameters[k]
		switch {
		case v == nil && had:
			delete(c.PostgreSQL.Parameters, k)
		case v != nil && (!had || old != *v):
			c.PostgreSQL.Parameters[k] = *v
		default:
			continue
		}
		changed = append(changed, k)
	}
	sort.Strings(changed)
	if len(changed) == 0 {
		return nil, nil
	}
	if err := c.WriteFile(path, ownerOf(path)); err != nil {
		return nil, err
	}
	return changed, nil
}

// ownerOf returns the owner of an existing file, or nil.
func ownerOf(path string) *Owner {
	fi, err := os.Lstat(path)
	if err != nil {
		return nil
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return &Owner{UID: int(st.Uid), GID: int(st.Gid)}
	}
	return nil
}

// BackupFile copies a member's YAML next to it as PATH.YYYYMMDDTHHMMSSZ.bak
// (0600, same owner), as pgherd does before it drops a cluster's last
// member, and returns the copy's path.
func BackupFile(path string, now time.Time) (string, error) {
	b, err := safefs.ReadFile(path) // never a file a planted link points at

	if err != nil {
		return "", fmt.Errorf("cannot back up the Patroni configuration: %w", err)
	}
	dst := path + "." + now.UTC().Format("20060102T150405Z") + ".bak"
	if err := writeOwned(dst, b, ownerOf(path)); err != nil {
		return "", err
	}
	return dst, nil
}

// EnvVars are the variables that let patronictl work on a member's YAML
// (`pgherd instance env`).
func EnvVars(c *Config, path string) []string {
	return []string{"PATRONI_NAME=" + c.Name, "PATRONI_SCOPE=" + c.Scope, "PATRONICTL_CONFIG_FILE=" + path}
}

// Info is the "patroni" object of `instance get -o json`: the member's own
// settings and the cluster as its REST API reports it.
type Info struct {
	Cluster string `json:"cluster"`
	Node    string `json:"node"`
	RestAPI struct {
		ConnectAddress string `json:"connect_address"`
		Listen         string `json:"listen"`
	} `json:"restapi"`
	PostgreSQL struct {
		ConnectHost string `json:"connect_host"`
	} `json:"postgresql"`
	ClusterMembers []ListEntry `json:"cluster_members"`
	// Timing is the cluster's timing profile (ClusterTiming).
	Timing TimingInfo `json:"timing"`
	// FastFailover says whether host-aware revocation is armed for this
	// member (set by pkg/instance, which knows its DCS member).
	FastFailover FastFailoverInfo `json:"fast_failover"`
}

// Describe returns c's Info. When the REST API does not answer, the Info
// still holds c's own settings (with no members) and the error says why.
func Describe(ctx context.Context, c *Config, client *Client) (Info, error) {
	var in Info
	in.Cluster, in.Node = c.Scope, c.Name
	in.RestAPI.ConnectAddress, in.RestAPI.Listen = c.RestAPI.ConnectAddress, c.RestAPI.Listen
	if h, _, err := net.SplitHostPort(c.PostgreSQL.ConnectAddress); err == nil {
		in.PostgreSQL.ConnectHost = h
	}
	in.ClusterMembers = []ListEntry{}
	in.Timing, _ = ClusterTiming(ctx, c, client) // its error is the one Cluster gives
	cl, err := client.Cluster(ctx)
	if err != nil {
		return in, err
	}
	in.ClusterMembers = cl.List()
	return in, nil
}

// ListEntry is one member in pgherd's JSON (schema pgherd.patroni-member/v1,
// in `patroni list` and `instance get`): every field present, the role in
// pgherd's vocabulary (see Role), the lag in bytes (nil for the leader and
// when Patroni does not know it), timeline 0 when unknown.
type ListEntry struct {
	Name           string `json:"name"`
	Host           string `json:"host"`
	Port           int    `json:"port"`
	Role           string `json:"role"`
	State          string `json:"state"`
	APIURL         string `json:"api_url"`
	Timeline       int    `json:"timeline"`
	LagBytes       *int64 `json:"lag_bytes"`
	PendingRestart bool   `json:"pending_restart"`
}

// List returns the cluster's members as `patroni list` rows, sorted by name.
func (c *Cluster) List() []ListEntry {
	out := make([]ListEntry, 0, len(c.Members))
	for _, m := range c.Members {
		e := ListEntry{Name: m.Name, Host: m.Host, Port: m.Port, Role: Role(m.Role), State: m.State, APIURL: m.APIURL,
			Timeline: m.Timeline, PendingRestart: m.PendingRestart}
		if m.Lag != nil && !m.Lag.Unknown {
			b := m.Lag.Bytes
			e.LagBytes = &b
		}
		out = append(out, e)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Role maps the words Patroni 3.0.2 uses for a member's role to pgherd's
// one vocabulary: leader, replica, sync_standby, standby_leader. GET
// /cluster already says "leader", but GET /patroni and the member keys in
// the DCS say "master" (or "primary" in later versions).
func Role(r string) string {
	switch r {
	case "master", "primary":
		return "leader"
	}
	return r
}
