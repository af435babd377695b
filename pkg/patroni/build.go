package patroni

import (
	"net"
	"strconv"
	"strings"
)

// Timings are Patroni's HA timings in seconds (bootstrap.dcs).
type Timings struct {
	TTL          int
	LoopWait     int
	RetryTimeout int
}

// DefaultTimings are Patroni's own defaults.
var DefaultTimings = Timings{TTL: 30, LoopWait: 10, RetryTimeout: 10}

// Spec is what pgherd knows about a member when it creates it: New turns it
// into a complete Config with pgherd's choices (pg_hba, rewind, roles,
// routing of cluster-wide parameters).
type Spec struct {
	Cluster   string // Patroni scope
	Namespace string // DCS key prefix; "" means Patroni's "/service"
	Node      string // Patroni name; unique in the cluster

	RestAPIListen  string // HOST:PORT; "" means RestAPIConnect
	RestAPIConnect string // HOST:PORT other members and pgherd use
	PGConnectHost  string // host other members reach PostgreSQL on
	PGPort         int
	PGListen       string // HOST[,HOST]; "" means PGConnectHost

	DataDir   string
	BinDir    string
	SocketDir string // unix_socket_directories; Patroni's own connections use it
	PgPass    string // file Patroni writes for pg_basebackup/pg_rewind
	LogDir    string // Patroni's log directory

	Etcd Etcd3 // DCS endpoints and TLS files

	Timings              Timings // zero means DefaultTimings
	MaximumLagOnFailover int64   // bytes; zero means 1 MiB
	SynchronousMode      bool
	// SynchronousModeStrict requires SynchronousMode.
	SynchronousModeStrict bool
	FailsafeMode          bool

	// Parameters for PostgreSQL: the cluster-wide ones (IsClusterWide) go to
	// bootstrap.dcs, the others to this member's postgresql.parameters.
	Parameters map[string]string

	Credentials Credentials
	// SuperuserName and ReplicationName name those roles; "" means
	// DefaultSuperuser and DefaultReplication.
	SuperuserName, ReplicationName string
	// Peers are the networks other members connect from (pg_hba address
	// fields: CIDR, host name or "samenet"); nil means ["samenet"].
	Peers []string

	// ReplicationSSLCert/Key are client TLS files for replication and rewind
	// connections (optional, both or neither).
	ReplicationSSLCert string
	ReplicationSSLKey  string

	Encoding      string // "" means UTF8
	Locale        string // "" means C.UTF-8
	DataChecksums bool

	Watchdog string // "" means "off"
	Tags     Tags
}

// Role names pgherd gives Patroni's PostgreSQL roles and its REST API user.
const (
	DefaultSuperuser   = "postgres"
	DefaultReplication = "replicator"
	RewindName         = "rewinder"
	RestAPIUserName    = "pgherd"
)

// New builds a member's Config from s. It does not validate (see Validate):
// bad input shows up there with a message naming the field.
func New(s Spec) *Config {
	t := s.Timings
	if t == (Timings{}) {
		t = DefaultTimings
	}
	lag := s.MaximumLagOnFailover
	if lag == 0 {
		lag = 1 << 20
	}
	restListen := s.RestAPIListen
	if restListen == "" {
		restListen = s.RestAPIConnect
	}
	pgListen := s.PGListen
	if pgListen == "" {
		pgListen = s.PGConnectHost
	}
	port := strconv.Itoa(s.PGPort)

	dcsParams := map[string]string{"wal_log_hints": "on"}
	localParams := map[string]string{"password_encryption": "scram-sha-256"}
	if s.SocketDir != "" {
		localParams["unix_socket_directories"] = s.SocketDir
	}
	for k, v := range s.Parameters {
		if IsClusterWide(k) {
			dcsParams[strings.ToLower(k)] = v
		} else {
			localParams[k] = v
		}
	}

	su, replName := s.SuperuserName, s.ReplicationName
	if su == "" {
		su = DefaultSuperuser
	}
	if replName == "" {
		replName = DefaultReplication
	}
	repl := User{Username: replName, Password: s.Credentials.Replication}
	rewind := User{Username: RewindName, Password: s.Credentials.Rewind}
	if s.ReplicationSSLCert != "" || s.ReplicationSSLKey != "" {
		repl.SSLCert, repl.SSLKey = s.ReplicationSSLCert, s.ReplicationSSLKey
		rewind.SSLCert, rewind.SSLKey = s.ReplicationSSLCert, s.ReplicationSSLKey
	}
	hba := pgHBA(pgListen, su, replName, s.Peers)

	enc, locale := s.Encoding, s.Locale
	if enc == "" {
		enc = "UTF8"
	}
	if locale == "" {
		locale = "C.UTF-8"
	}
	wd := s.Watchdog
	if wd == "" {
		wd = "off"
	}
	return &Config{
		Scope:     s.Cluster,
		Namespace: s.Namespace,
		Name:      s.Node,
		Log:       Log{Dir: s.LogDir, Level: "INFO"},
		RestAPI: RestAPI{
			Listen:         restListen,
			ConnectAddress: s.RestAPIConnect,
			Authentication: &BasicAuth{Username: RestAPIUserName, Password: s.Credentials.RestAPI},
		},
		Etcd3: s.Etcd,
		Bootstrap: Bootstrap{
			DCS: DCS{
				TTL: t.TTL, LoopWait: t.LoopWait, RetryTimeout: t.RetryTimeout,
				MaximumLagOnFailover:  lag,
				SynchronousMode:       s.SynchronousMode,
				SynchronousModeStrict: s.SynchronousModeStrict,
				FailsafeMode:          s.FailsafeMode,
				PostgreSQL:            DCSPostgreSQL{UsePgRewind: true, UseSlots: true, Parameters: dcsParams, PgHBA: hba},
			},
			InitDB: InitDB{Encoding: enc, Locale: locale, DataChecksums: s.DataChecksums},
			PgHBA:  hba,
		},
		PostgreSQL: PostgreSQL{
			Listen:         pgListen + ":" + port,
			ConnectAddress: net.JoinHostPort(s.PGConnectHost, port),
			DataDir:        s.DataDir,
			BinDir:         s.BinDir,
			PgPass:         s.PgPass,
			Authentication: Authentication{
				Superuser:   User{Username: su, Password: s.Credentials.Superuser},
				Replication: repl,
				Rewind:      rewind,
			},
			Parameters:    localParams,
			UseUnixSocket: s.SocketDir != "",
		},
		Watchdog: Watchdog{Mode: wd},
		Tags:     s.Tags,
	}
}

// pgHBA returns the rules a member needs, all with scram-sha-256:
//   - the superuser on the local socket and over TCP from this host (Patroni's
//     own connections go to the socket, or to the first listen address when
//     there is no socket; a connection to any 127.x address comes from
//     127.0.0.1);
//   - replication (streaming, pg_basebackup) from the peers;
//   - the rewind user on database postgres from the peers (pg_rewind);
//   - every other local connection by peer authentication.
func pgHBA(listen, su, repl string, peers []string) []string {
	if len(peers) == 0 {
		peers = []string{"samenet"}
	}
	sc := "scram-sha-256"
	// samehost: the superuser over TCP from the member's own host, on
	// whichever member's host the cluster-wide list is written (a listen
	// address below covers only the bootstrap member's, and loopback
	// aliases, which are not interface addresses).
	rules := []string{
		"local all " + su + " " + sc,
		"host all " + su + " 127.0.0.1/32 " + sc,
		"host all " + su + " samehost " + sc,
	}
	for _, h := range strings.Split(listen, ",") {
		h = strings.TrimSpace(h)
		if ip := net.ParseIP(h); ip != nil && !ip.Equal(net.IPv4(127, 0, 0, 1)) && !ip.IsUnspecified() {
			bits := "/32"
			if ip.To4() == nil {
				bits = "/128"
			}
			rules = append(rules, "host all "+su+" "+h+bits+" "+sc)
		}
	}
	for _, p := range peers {
		rules = append(rules,
			"host replication "+repl+" "+p+" "+sc,
			"host postgres "+RewindName+" "+p+" "+sc)
	}
	return append(rules, "local all all peer")
}
