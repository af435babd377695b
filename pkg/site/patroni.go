package site

import (
	"fmt"
	"net"
	"strings"

	"github.com/pgherd/pgherd/pkg/patroni"
)

// Patroni holds the settings of Patroni-managed instances
// (`instance create --patroni-cluster`).
type Patroni struct {
	// Execpath is the patroni program.
	Execpath string `yaml:"execpath" json:"execpath"`
	// Configpath is a member's YAML; {version} and {name} are substituted.
	Configpath string `yaml:"configpath" json:"configpath"`
	// Credentialspath holds a cluster's passwords (0600); {cluster} is substituted.
	Credentialspath string `yaml:"credentialspath" json:"credentialspath"`
	// Logpath is the directory of a member's Patroni log.
	Logpath string `yaml:"logpath" json:"logpath"`
	// RestapiPort is the first REST API port; later members take the next free one.
	RestapiPort int `yaml:"restapi_port" json:"restapi_port"`
	// Timing is the timing profile (patroni.TimingProfile): it gives
	// TTL, LoopWait and RetryTimeout unless the site file or a variable
	// sets them.
	Timing string `yaml:"timing" json:"timing"`
	// Timings and failover policy, written to bootstrap.dcs.
	TTL                  int   `yaml:"ttl" json:"ttl"`
	LoopWait             int   `yaml:"loop_wait" json:"loop_wait"`
	RetryTimeout         int   `yaml:"retry_timeout" json:"retry_timeout"`
	MaximumLagOnFailover int64 `yaml:"maximum_lag_on_failover" json:"maximum_lag_on_failover"`
	SynchronousMode      bool  `yaml:"synchronous_mode" json:"synchronous_mode"`
	// SynchronousModeStrict keeps commits waiting when no synchronous
	// standby is left, rather than the primary going asynchronous.
	SynchronousModeStrict bool `yaml:"synchronous_mode_strict" json:"synchronous_mode_strict"`
	FailsafeMode          bool `yaml:"failsafe_mode" json:"failsafe_mode"`
	// Watchdog is off, automatic or required.
	Watchdog string     `yaml:"watchdog" json:"watchdog"`
	DCS      PatroniDCS `yaml:"dcs" json:"dcs"`
}

// DCS kinds.
const (
	DCSEmbedded = "embedded" // pgherd's own store: a member beside each instance, plus witnesses
	DCSEtcd     = "etcd"     // an external etcd v3 cluster
)

// PatroniDCS is the store Patroni uses.
type PatroniDCS struct {
	// Kind is embedded (pgherd's DCS, the default) or etcd (an external
	// etcd v3 cluster).
	Kind      string   `yaml:"kind" json:"kind"`
	Hosts     []string `yaml:"hosts" json:"hosts"`
	Namespace string   `yaml:"namespace" json:"namespace"`
	Protocol  string   `yaml:"protocol" json:"protocol"`
	CACert    string   `yaml:"cacert" json:"cacert"`
	Cert      string   `yaml:"cert" json:"cert"`
	Key       string   `yaml:"key" json:"key"`
	// Embedded configures the members of pgherd's DCS on this host.
	Embedded EmbeddedDCS `yaml:"embedded" json:"embedded"`
}

// EmbeddedDCS holds the defaults of this host's members of the embedded
// DCS (instance create, witness add).
type EmbeddedDCS struct {
	// PeerPort and ClientPort are the default ports of --dcs-listen-peer
	// and --dcs-listen-client (on the PostgreSQL connect host).
	PeerPort   int `yaml:"peer_port" json:"peer_port"`
	ClientPort int `yaml:"client_port" json:"client_port"`
	// Zone is this host's failure domain (--zone, --dcs-zone default).
	Zone string `yaml:"zone" json:"zone"`
	// Profile is production (a witness sharing a data member's zone is
	// refused) or testing (only a warning).
	Profile string `yaml:"profile" json:"profile"`
	// QuotaBytes is each new member's space quota (dcs.Config.QuotaBytes).
	QuotaBytes int64 `yaml:"quota_bytes" json:"quota_bytes"`
	// Snapshots has each new member write its state periodically
	// (dcs.Config.Snapshots); off while Dir is empty.
	Snapshots DCSSnapshots `yaml:"snapshots" json:"snapshots"`
	// TLS gives every new member certificates of the cluster's own CA
	// and mutual TLS on both ports (the default); false sets members up
	// on plain TCP, which profile production refuses.
	TLS bool `yaml:"tls" json:"tls"`
	// Sysuser is the account this host's members run as, and own their
	// data, keys and state, when pgherd runs as root: an account of
	// their own (default pgherd-dcs, made by make deps), so that
	// PostgreSQL's account (sysuser) cannot read their keys.
	Sysuser string `yaml:"sysuser" json:"sysuser"`
	// FastFailover arms host-aware revocation (docs/ha-witness.md).
	FastFailover FastFailover `yaml:"fast_failover" json:"fast_failover"`
}

// FastFailover is patroni.dcs.embedded.fast_failover.
type FastFailover struct {
	Enabled bool `yaml:"enabled" json:"enabled"`
	// Detect is how long, in seconds, a primary's host must be out of
	// contact before its leader key's lease is revoked; 0 derives it from
	// the timings (patroni.FastFailoverBounds).
	Detect int `yaml:"detect" json:"detect"`
}

// DCSSnapshots is patroni.dcs.embedded.snapshots.
type DCSSnapshots struct {
	// Dir receives the files (NAME-YYYYMMDDTHHMMSSZ.db), relative to the
	// prefix unless absolute; "" turns periodic snapshots off.
	Dir string `yaml:"dir" json:"dir"`
	// Interval between two snapshots, in seconds.
	Interval int `yaml:"interval" json:"interval"`
	// Keep is how many of each member's snapshots are kept.
	Keep int `yaml:"keep" json:"keep"`
}

// timingKeys are the settings a timing profile gives.
var timingKeys = []string{"patroni.ttl", "patroni.loop_wait", "patroni.retry_timeout"}

// applyTiming sets, from the profile p.Timing, each of ttl, loop_wait and
// retry_timeout that set does not report as given (by the site file or a
// variable). An unknown profile is refused with the list of profiles.
func (p *Patroni) applyTiming(set func(key string) bool) error {
	t, err := patroni.TimingProfile(p.Timing)
	if err != nil {
		return fmt.Errorf("patroni.timing: %w", err)
	}
	for i, v := range []*int{&p.TTL, &p.LoopWait, &p.RetryTimeout} {
		if !set(timingKeys[i]) {
			*v = []int{t.TTL, t.LoopWait, t.RetryTimeout}[i]
		}
	}
	return nil
}

func defaultPatroni() Patroni {
	fast, _ := patroni.TimingProfile(patroni.ProfileFast)
	return Patroni{
		Execpath:             "/usr/bin/patroni",
		Configpath:           "etc/patroni/{version}-{name}.yaml",
		Credentialspath:      "etc/patroni/{cluster}.credentials",
		Logpath:              "log/patroni/{version}-{name}",
		RestapiPort:          8008,
		Timing:               patroni.ProfileFast,
		TTL:                  fast.TTL,
		LoopWait:             fast.LoopWait,
		RetryTimeout:         fast.RetryTimeout,
		MaximumLagOnFailover: 1048576,
		Watchdog:             "off",
		DCS: PatroniDCS{Kind: DCSEmbedded, Namespace: "/service", Protocol: "http",
			Embedded: EmbeddedDCS{PeerPort: 2380, ClientPort: 2379, Profile: "production", QuotaBytes: 32 << 20, TLS: true, Sysuser: "pgherd-dcs",
				Snapshots: DCSSnapshots{Interval: 3600, Keep: 24}}},
	}
}

// validate checks what the types do not; the DCS is checked when a
// Patroni instance is created (a site without Patroni needs none).
func (p *Patroni) validate() error {
	if p.RestapiPort < 1 || p.RestapiPort > 65535 {
		return fmt.Errorf("patroni.restapi_port: %d is not a TCP port (1-65535)", p.RestapiPort)
	}
	if _, err := patroni.TimingProfile(p.Timing); err != nil {
		return fmt.Errorf("patroni.timing: %w", err)
	}
	if p.SynchronousModeStrict && !p.SynchronousMode {
		return errStrictWithoutSync
	}
	if d := p.DCS.Embedded.FastFailover.Detect; d < 0 {
		return fmt.Errorf("patroni.dcs.embedded.fast_failover.detect: %d is negative: give seconds, or 0 to derive it from the timings", d)
	}
	switch p.Watchdog {
	case "off", "automatic", "required":
	default:
		return fmt.Errorf("patroni.watchdog: %q is not one of off, automatic, required", p.Watchdog)
	}
	switch p.DCS.Kind {
	case DCSEmbedded, DCSEtcd:
	default:
		return fmt.Errorf("patroni.dcs.kind: %q is not supported: use embedded or etcd", p.DCS.Kind)
	}
	switch p.DCS.Embedded.Profile {
	case "production", "testing":
	default:
		return fmt.Errorf("patroni.dcs.embedded.profile: %q is not production or testing", p.DCS.Embedded.Profile)
	}
	if !p.DCS.Embedded.TLS && p.DCS.Embedded.Profile == "production" {
		return fmt.Errorf("patroni.dcs.embedded.tls: false leaves the DCS open to anyone who reaches its ports, which profile production refuses: remove tls: false, or set profile: testing")
	}
	if p.DCS.Embedded.Sysuser == "" {
		return fmt.Errorf("patroni.dcs.embedded.sysuser is empty: name the account DCS members run as when pgherd runs as root (default pgherd-dcs, which make deps creates)")
	}
	for key, port := range map[string]int{"peer_port": p.DCS.Embedded.PeerPort, "client_port": p.DCS.Embedded.ClientPort} {
		if port < 1 || port > 65535 {
			return fmt.Errorf("patroni.dcs.embedded.%s: %d is not a TCP port (1-65535)", key, port)
		}
	}
	if q := p.DCS.Embedded.QuotaBytes; q < 8<<20 {
		return fmt.Errorf("patroni.dcs.embedded.quota_bytes: %d is below 8388608 (8 MiB: the history alone may hold 4 MiB): raise it", q)
	}
	if sn := p.DCS.Embedded.Snapshots; sn.Interval < 1 || sn.Keep < 1 {
		return fmt.Errorf("patroni.dcs.embedded.snapshots: interval %d and keep %d: want at least 1 second and 1 snapshot", sn.Interval, sn.Keep)
	}
	switch p.DCS.Protocol {
	case "http", "https":
	default:
		return fmt.Errorf("patroni.dcs.protocol: %q is not http or https", p.DCS.Protocol)
	}
	for _, h := range p.DCS.Hosts {
		if _, _, err := net.SplitHostPort(h); err != nil {
			return fmt.Errorf("patroni.dcs.hosts: %q is not HOST:PORT", h)
		}
	}
	if !strings.Contains(p.Credentialspath, "{cluster}") {
		return fmt.Errorf("patroni.credentialspath: %q must contain {cluster}", p.Credentialspath)
	}
	return nil
}

// PatroniCredentialsGlob matches the credentials files of every Patroni
// cluster (patroni.credentialspath with * for {cluster}).
func (s *Settings) PatroniCredentialsGlob() string {
	return Path(s.Prefix, strings.ReplaceAll(s.Patroni.Credentialspath, "{cluster}", "*"), "", "")
}
