package dcs

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"strconv"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/pgherd/pgherd/pkg/names"
)

// Role says what runs beside a member.
const (
	RoleData    = "data"    // beside a PostgreSQL node
	RoleWitness = "witness" // nothing else: a tie-breaking voter
)

// Config is one member's configuration, the YAML file read by
// `pgherd-dcs --config FILE` (and `pgherd dcs serve --config FILE`).
type Config struct {
	Name string `yaml:"name"`
	Role string `yaml:"role"` // data (default) or witness
	Zone string `yaml:"zone,omitempty"`
	// Instance is the PostgreSQL instance (VERSION/NAME) a data member was
	// set up for. Root wrote it, in a file only root changes: instance drop
	// removes the member that names the instance, not one named in the
	// Patroni YAML, which the service account can edit.
	Instance     string `yaml:"instance,omitempty"`
	DataDir      string `yaml:"data_dir"`
	ListenPeer   string `yaml:"listen_peer"`   // host:port for Raft and cluster RPCs
	ListenClient string `yaml:"listen_client"` // host:port for the etcd v3 API
	// AdvertisePeer is the host:port other members dial; default ListenPeer.
	AdvertisePeer string `yaml:"advertise_peer,omitempty"`
	// AdvertiseClient is the URL given to clients in member lists;
	// default http(s)://ListenClient.
	AdvertiseClient string `yaml:"advertise_client,omitempty"`
	// Join lists peer addresses of existing members. It is used only when
	// the data directory holds no cluster yet; without it the member
	// bootstraps a new one-member cluster.
	Join []string `yaml:"join,omitempty"`
	// ClusterID is the cluster this member belongs to (16 hex digits),
	// written by pgherd once the member has bootstrapped or joined. With
	// it, a member refuses a data directory of another cluster, and one
	// whose directory is empty refuses to bootstrap a new cluster.
	ClusterID string    `yaml:"cluster_id,omitempty"`
	PeerTLS   TLSConfig `yaml:"peer_tls,omitempty"`
	// CADir holds the cluster's CAs with their keys and the join tokens
	// minted on this host (a data member's host only): a member with it
	// signs the certificates of newcomers that bring a token.
	CADir string `yaml:"ca_dir,omitempty"`
	// Credentials matches the Patroni credentials files of this host
	// (patroni.credentialspath): a data member hands them to a data member
	// that joins with a data token.
	Credentials string    `yaml:"credentials,omitempty"`
	ClientTLS   TLSConfig `yaml:"client_tls,omitempty"`
	// AcceptPlain is set by `pgherd dcs tls enable` while it switches a
	// plain-TCP cluster to TLS, and cleared by it once every member speaks
	// TLS: both ports then also accept plain TCP (told from a TLS
	// ClientHello by the first byte), and the member dials its peers with
	// TLS, falling back to plain TCP for one not switched yet.
	AcceptPlain bool `yaml:"accept_plain,omitempty"`

	// Tuning; zero values take the defaults.
	HeartbeatTimeout  time.Duration `yaml:"heartbeat_timeout,omitempty"`  // default 1s
	SnapshotThreshold uint64        `yaml:"snapshot_threshold,omitempty"` // default 8192 entries
	// SnapshotInterval is how often Raft checks SnapshotThreshold
	// (default 2m, each check jittered up to twice as long).
	SnapshotInterval time.Duration `yaml:"snapshot_interval,omitempty"`
	TrailingLogs     uint64        `yaml:"trailing_logs,omitempty"` // default 10240 entries
	// HistoryLimit is the number of revisions kept for watches and
	// historic reads; 0 means 4096 (mvcc.DefaultHistoryLimit). The history
	// is also bounded to 4 MiB of values. Every member must use the same
	// figure: a txn reading an old revision succeeds only if it is kept.
	HistoryLimit int `yaml:"history_limit,omitempty"`
	// QuotaBytes is the space quota: when the state machine's accounted
	// size (keys, values, history, leases) would exceed it, the leader
	// raises etcd's NOSPACE alarm and writes are refused until space is
	// freed and the alarm disarmed. 0 means DefaultQuotaBytes.
	QuotaBytes int64 `yaml:"quota_bytes,omitempty"`
	// Snapshots, when its dir is set, has the member write its state to
	// that directory periodically (snapshot.go).
	Snapshots SnapshotSchedule `yaml:"snapshots,omitempty"`

	// RestoreFrom is a snapshot file (dcs.Restore): used only when the
	// data directory holds no cluster yet, the member then starts a new
	// one-member cluster with the snapshot's state.
	RestoreFrom string `yaml:"restore_from,omitempty"`
	// ForceNewCluster (16 hex digits, written by `pgherd dcs recover`)
	// makes the member rewrite its data directory at start so that it
	// alone is the cluster, under this new cluster ID.
	ForceNewCluster string `yaml:"force_new_cluster,omitempty"`
	// FastFailover arms host-aware revocation for the Patroni member
	// beside this one (fastfailover.go); the zero value leaves it off.
	FastFailover FastFailover `yaml:"fast_failover,omitempty"`
}

// Space quota bounds (site.yaml: patroni.dcs.embedded.quota_bytes).
const (
	DefaultQuotaBytes = 32 << 20
	// MinQuotaBytes leaves room for a full history (4 MiB) beside the
	// largest request (1.5 MiB): a smaller quota could be exhausted by a
	// Patroni cluster's own churn.
	MinQuotaBytes = 8 << 20
)

// LoadConfig reads and validates a member configuration file.
func LoadConfig(file string) (Config, error) {
	var c Config
	raw, err := os.ReadFile(file)
	if err != nil {
		return c, fmt.Errorf("read dcs config: %w", err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(raw))
	dec.KnownFields(true)
	if err := dec.Decode(&c); err != nil {
		return c, fmt.Errorf("parse dcs config %s: %w", file, err)
	}
	if err := c.Validate(); err != nil {
		return c, fmt.Errorf("dcs config %s: %w", file, err)
	}
	return c, nil
}

// Validate checks the configuration and fills defaults.
func (c *Config) Validate() error {
	if c.Name == "" {
		return fmt.Errorf("name is required")
	}
	if err := names.Check("member", c.Name); err != nil {
		return err
	}
	switch c.Role {
	case "":
		c.Role = RoleData
	case RoleData, RoleWitness:
	default:
		return fmt.Errorf("role %q: use %s or %s", c.Role, RoleData, RoleWitness)
	}
	if c.DataDir == "" {
		return fmt.Errorf("data_dir is required")
	}
	for what, a := range map[string]string{"listen_peer": c.ListenPeer, "listen_client": c.ListenClient} {
		if _, _, err := net.SplitHostPort(a); err != nil {
			return fmt.Errorf("%s %q: want host:port", what, a)
		}
	}
	if err := c.PeerTLS.validate("peer"); err != nil {
		return err
	}
	if err := c.ClientTLS.validate("client"); err != nil {
		return err
	}
	if c.AcceptPlain && (!c.PeerTLS.Enabled() || !c.ClientTLS.Enabled()) {
		return fmt.Errorf("accept_plain is for a member switching to TLS: it needs peer_tls and client_tls")
	}
	if c.ClusterID != "" {
		if _, err := strconv.ParseUint(c.ClusterID, 16, 64); err != nil || len(c.ClusterID) != 16 {
			return fmt.Errorf("cluster_id %q: want 16 hex digits, as `pgherd dcs status -o json` shows it", c.ClusterID)
		}
	}
	if c.HeartbeatTimeout == 0 {
		c.HeartbeatTimeout = time.Second
	}
	if c.SnapshotThreshold == 0 {
		c.SnapshotThreshold = 8192
	}
	if c.SnapshotInterval == 0 {
		c.SnapshotInterval = 2 * time.Minute
	}
	if c.TrailingLogs == 0 {
		c.TrailingLogs = 10240
	}
	if c.HistoryLimit < 0 {
		return fmt.Errorf("history_limit %d: want a number of revisions, or 0 for the default (4096)", c.HistoryLimit)
	}
	switch {
	case c.QuotaBytes == 0:
		c.QuotaBytes = DefaultQuotaBytes
	case c.QuotaBytes < MinQuotaBytes:
		return fmt.Errorf("quota_bytes %d: want at least %d (8 MiB: the history alone may hold 4 MiB), or 0 for the default (%d)", c.QuotaBytes, MinQuotaBytes, DefaultQuotaBytes)
	}
	if err := c.FastFailover.validate(c.Role); err != nil {
		return err
	}
	return c.Snapshots.validate()
}

// Advertise fills the advertised addresses from the bound listeners when
// they are not set, refusing wildcard addresses nobody can dial.
func (c *Config) Advertise(peer, client net.Addr) error {
	if c.AdvertisePeer == "" {
		c.AdvertisePeer = peer.String()
	}
	if c.AdvertiseClient == "" {
		scheme := "http"
		if c.ClientTLS.Enabled() {
			scheme = "https"
		}
		c.AdvertiseClient = scheme + "://" + client.String()
	}
	host, _, err := net.SplitHostPort(c.AdvertisePeer)
	if err != nil {
		return fmt.Errorf("advertise_peer %q: want host:port", c.AdvertisePeer)
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
		return fmt.Errorf("listen_peer %s is a wildcard address: set advertise_peer to an address other members can reach", c.ListenPeer)
	}
	if ip := net.ParseIP(hostOfURL(c.AdvertiseClient)); ip != nil && ip.IsUnspecified() {
		return fmt.Errorf("listen_client %s is a wildcard address: set advertise_client to a URL clients can reach", c.ListenClient)
	}
	return nil
}

// ClientURL is the URL of a member's etcd API (its advertised one).
func (c Config) ClientURL() string {
	if c.AdvertiseClient != "" {
		return c.AdvertiseClient
	}
	scheme := "http"
	if c.ClientTLS.Enabled() {
		scheme = "https"
	}
	return scheme + "://" + c.ListenClient
}

// PeerAddr is the host:port other members dial to reach a member's peer
// port (its advertised one).
func (c Config) PeerAddr() string {
	if c.AdvertisePeer != "" {
		return c.AdvertisePeer
	}
	return c.ListenPeer
}

func hostOfURL(u string) string {
	for _, p := range []string{"http://", "https://"} {
		if len(u) > len(p) && u[:len(p)] == p {
			u = u[len(p):]
		}
	}
	h, _, err := net.SplitHostPort(u)
	if err != nil {
		return u
	}
	return h
}
