package patroni

import (
	"bytes"
	"fmt"
	"path/filepath"
	"sort"

	"gopkg.in/yaml.v3"

	"github.com/pgherd/pgherd/pkg/safefs"
)

// Config is one member's Patroni configuration file, field for field. Marshal
// renders it with every mapping's keys sorted, so the same Config always gives
// the same bytes. Passwords are Secrets: printing or JSON-encoding a Config
// masks them, only Marshal writes them.
type Config struct {
	Scope      string     `yaml:"scope"`
	Namespace  string     `yaml:"namespace,omitempty"`
	Name       string     `yaml:"name"`
	Log        Log        `yaml:"log"`
	RestAPI    RestAPI    `yaml:"restapi"`
	Etcd3      Etcd3      `yaml:"etcd3"`
	Bootstrap  Bootstrap  `yaml:"bootstrap"`
	PostgreSQL PostgreSQL `yaml:"postgresql"`
	Watchdog   Watchdog   `yaml:"watchdog"`
	Tags       Tags       `yaml:"tags"`
}

// Log is Patroni's own log: a rotated file patroni.log in Dir.
type Log struct {
	Dir   string `yaml:"dir,omitempty"`
	Level string `yaml:"level,omitempty"`
}

// File is the path of Patroni's current log file, or "" when it logs to
// its standard error.
func (l Log) File() string {
	if l.Dir == "" {
		return ""
	}
	return filepath.Join(l.Dir, "patroni.log")
}

// RestAPI is Patroni's REST API. Listen and ConnectAddress are HOST:PORT.
type RestAPI struct {
	Listen         string     `yaml:"listen"`
	ConnectAddress string     `yaml:"connect_address"`
	Authentication *BasicAuth `yaml:"authentication,omitempty"`
	CAFile         string     `yaml:"cafile,omitempty"`
	CertFile       string     `yaml:"certfile,omitempty"`
	KeyFile        string     `yaml:"keyfile,omitempty"`
}

// BasicAuth guards the REST API's writing endpoints (POST, PATCH...).
type BasicAuth struct {
	Username string `yaml:"username"`
	Password Secret `yaml:"password"`
}

// Etcd3 is the DCS: an etcd v3 cluster (Debian's etcd or pgherd's own store).
// Hosts are HOST:PORT.
type Etcd3 struct {
	Hosts []string `yaml:"hosts,omitempty"`
	// URL is one endpoint, which Patroni's validator does not probe
	// (ValidateBeforeDCS); pgherd's own files always list Hosts.
	URL      string `yaml:"url,omitempty"`
	Protocol string `yaml:"protocol,omitempty"`
	CACert   string `yaml:"cacert,omitempty"`
	Cert     string `yaml:"cert,omitempty"`
	Key      string `yaml:"key,omitempty"`
}

// Bootstrap is used once, when the first member initialises the cluster;
// later changes to DCS go through PATCH /config.
type Bootstrap struct {
	DCS    DCS      `yaml:"dcs"`
	InitDB InitDB   `yaml:"initdb"`
	PgHBA  []string `yaml:"pg_hba"`
}

// DCS is the cluster-wide ("dynamic") configuration Patroni stores in the DCS.
// Timings are in seconds; MaximumLagOnFailover in bytes.
type DCS struct {
	TTL                  int   `yaml:"ttl"`
	LoopWait             int   `yaml:"loop_wait"`
	RetryTimeout         int   `yaml:"retry_timeout"`
	MaximumLagOnFailover int64 `yaml:"maximum_lag_on_failover"`
	SynchronousMode      bool  `yaml:"synchronous_mode"`
	// SynchronousModeStrict: with no synchronous standby, commits wait
	// rather than the primary going asynchronous (Patroni 3.0.2's
	// synchronous_mode_strict).
	SynchronousModeStrict bool          `yaml:"synchronous_mode_strict,omitempty"`
	FailsafeMode          bool          `yaml:"failsafe_mode,omitempty"`
	PostgreSQL            DCSPostgreSQL `yaml:"postgresql"`
}

// DCSPostgreSQL holds the parameters every member shares (see
// IsClusterWide).
type DCSPostgreSQL struct {
	UsePgRewind bool              `yaml:"use_pg_rewind"`
	UseSlots    bool              `yaml:"use_slots"`
	Parameters  map[string]string `yaml:"parameters,omitempty"`
	// PgHBA is the cluster's one pg_hba: every member, present and
	// future, writes its pg_hba.conf from it ('pgherd pghba' edits it).
	PgHBA []string `yaml:"pg_hba,omitempty"`
}

// InitDB are the initdb options of the first member. It marshals to
// Patroni's list form: [{encoding: UTF8}, {locale: C.UTF-8}, data-checksums].
type InitDB struct {
	Encoding      string
	Locale        string
	DataChecksums bool
}

// MarshalYAML implements yaml.Marshaler.
func (i InitDB) MarshalYAML() (any, error) {
	out := []any{}
	if i.Encoding != "" {
		out = append(out, map[string]string{"encoding": i.Encoding})
	}
	if i.Locale != "" {
		out = append(out, map[string]string{"locale": i.Locale})
	}
	if i.DataChecksums {
		out = append(out, "data-checksums")
	}
	return out, nil
}

// UnmarshalYAML reads Patroni's list form back.
func (i *InitDB) UnmarshalYAML(n *yaml.Node) error {
	var items []any
	if err := n.Decode(&items); err != nil {
		return fmt.Errorf("bootstrap.initdb: %w", err)
	}
	*i = InitDB{}
	for _, it := range items {
		switch v := it.(type) {
		case string:
			if v != "data-checksums" {
				return fmt.Errorf("bootstrap.initdb: pgherd does not handle option %q", v)
			}
			i.DataChecksums = true
		case map[string]any:
			for k, val := range v {
				s := fmt.Sprint(val)
				switch k {
				case "encoding":
					i.Encoding = s
				case "locale":
					i.Locale = s
				default:
					return fmt.Errorf("bootstrap.initdb: pgherd does not handle option %q", k)
				}
			}
		default:
			return fmt.Errorf("bootstrap.initdb: unexpected item %v", it)
		}
	}
	return nil
}

// PostgreSQL is this member's PostgreSQL. Listen is HOST[,HOST...]:PORT,
// ConnectAddress HOST:PORT.
type PostgreSQL struct {
	Listen         string            `yaml:"listen"`
	ConnectAddress string            `yaml:"connect_address"`
	DataDir        string            `yaml:"data_dir"`
	BinDir         string            `yaml:"bin_dir"`
	PgPass         string            `yaml:"pgpass"`
	Authentication Authentication    `yaml:"authentication"`
	Parameters     map[string]string `yaml:"parameters,omitempty"`
	// PgHBA would override the cluster-wide pg_hba: pgherd leaves it
	// empty (members made before it moved keep theirs until 'pgherd
	// pghba' migrates them).
	PgHBA         []string `yaml:"pg_hba,omitempty"`
	UseUnixSocket bool     `yaml:"use_unix_socket"`
	// CreateReplicaMethods are tried in order to create a replica;
	// "basebackup" is Patroni's own, "pgbackrest" is PgBackRest. Empty
	// means basebackup only.
	CreateReplicaMethods []string       `yaml:"create_replica_methods,omitempty"`
	PgBackRest           *ReplicaMethod `yaml:"pgbackrest,omitempty"`
	// RecoveryConf are recovery settings Patroni writes for a replica
	// (restore_command: Patroni removes it from postgresql.auto.conf).
	RecoveryConf map[string]string `yaml:"recovery_conf,omitempty"`
}

// ReplicaMethod is a create_replica_methods entry run as a command. With
// NoParams, Patroni passes no --scope/--datadir/... arguments; with
// KeepData, it leaves the data directory for the command (a delta
// restore) rather than removing it first.
type ReplicaMethod struct {
	Command  string `yaml:"command"`
	NoParams bool   `yaml:"no_params"`
	KeepData bool   `yaml:"keep_data"`
}

// Authentication are the three roles Patroni uses: its own connections
// (superuser), streaming and pg_basebackup (replication), pg_rewind (rewind).
type Authentication struct {
	Superuser   User `yaml:"superuser"`
	Replication User `yaml:"replication"`
	Rewind      User `yaml:"rewind"`
}

// User is one role with its password and optional client TLS files.
type User struct {
	Username    string `yaml:"username"`
	Password    Secret `yaml:"password"`
	SSLMode     string `yaml:"sslmode,omitempty"`
	SSLCert     string `yaml:"sslcert,omitempty"`
	SSLKey      string `yaml:"sslkey,omitempty"`
	SSLRootCert string `yaml:"sslrootcert,omitempty"`
}

// Watchdog is Linux watchdog use: "off" (pgherd's default), "automatic" or
// "required".
type Watchdog struct {
	Mode   string `yaml:"mode"`
	Device string `yaml:"device,omitempty"`
}

// Tags steer Patroni's choices for this member.
type Tags struct {
	NoFailover    bool   `yaml:"nofailover"`
	NoLoadBalance bool   `yaml:"noloadbalance"`
	CloneFrom     bool   `yaml:"clonefrom"`
	NoSync        bool   `yaml:"nosync"`
	ReplicateFrom string `yaml:"replicatefrom,omitempty"`
}

// secrets lists every password in c, for redaction.
func (c *Config) secrets() []string {
	a := c.PostgreSQL.Authentication
	s := []string{a.Superuser.Password.Reveal(), a.Replication.Password.Reveal(), a.Rewind.Password.Reveal()}
	if c.RestAPI.Authentication != nil {
		s = append(s, c.RestAPI.Authentication.Password.Reveal())
	}
	return s
}

// Marshal renders c as YAML with the keys of every mapping sorted and
// two-space indentation. It does not validate c (see Validate).
func (c *Config) Marshal() ([]byte, error) {
	var n yaml.Node
	if err := n.Encode(c); err != nil {
		return nil, fmt.Errorf("cannot encode Patroni configuration: %w", err)
	}
	sortKeys(&n)
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(&n); err != nil {
		return nil, fmt.Errorf("cannot encode Patroni configuration: %w", err)
	}
	if err := enc.Close(); err != nil {
		return nil, fmt.Errorf("cannot encode Patroni configuration: %w", err)
	}
	return buf.Bytes(), nil
}

// WriteFile marshals c and writes it to path atomically with mode 0600 (it
// holds passwords), owned by owner when it is not nil.
func (c *Config) WriteFile(path string, owner *Owner) error {
	b, err := c.Marshal()
	if err != nil {
		return err
	}
	return writeOwned(path, b, owner)
}

// ReadFile reads a member's configuration written by WriteFile. Unknown
// keys are an error: the file is pgherd's, and a key it does not model would
// be lost on the next WriteFile.
func ReadFile(path string) (*Config, error) {
	b, err := safefs.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("cannot read Patroni configuration: %w", err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	var c Config
	if err := dec.Decode(&c); err != nil {
		return nil, fmt.Errorf("Patroni configuration %s: %w", path, err)
	}
	if err := checkNames(&c, false); err != nil {
		return nil, fmt.Errorf("Patroni configuration %s: %w", path, err)
	}
	return &c, nil
}

// sortKeys sorts the keys of every mapping under n, recursively; sequences
// keep their order.
func sortKeys(n *yaml.Node) {
	if n.Kind == yaml.MappingNode {
		pairs := make([][2]*yaml.Node, 0, len(n.Content)/2)
		for i := 0; i+1 < len(n.Content); i += 2 {
			pairs = append(pairs, [2]*yaml.Node{n.Content[i], n.Content[i+1]})
		}
		sort.SliceStable(pairs, func(i, j int) bool { return pairs[i][0].Value < pairs[j][0].Value })
		n.Content = n.Content[:0]
		for _, p := range pairs {
			n.Content = append(n.Content, p[0], p[1])
		}
	}
	for _, c := range n.Content {
		sortKeys(c)
	}
}
