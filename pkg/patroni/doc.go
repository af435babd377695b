// Package patroni is everything pgherd knows about Patroni 3.0.x: the member
// configuration it generates, the checks it makes before Patroni sees it,
// the passwords a cluster shares, and a client for the REST API, the only
// way pgherd acts on a running Patroni.
//
// Creating a member (what `instance create --patroni-cluster` does):
//
//	creds, _, err := patroni.LoadOrCreateCredentials(credFile, owner) // 0600; every member of a cluster needs the same file
//	cfg := patroni.New(patroni.Spec{Cluster: "main", Node: "pg1", RestAPIConnect: "127.0.1.1:8008",
//		PGConnectHost: "127.0.1.1", PGPort: 5432, DataDir: ..., BinDir: ..., SocketDir: ...,
//		PgPass: ..., LogDir: ..., Etcd: patroni.Etcd3{Hosts: []string{"127.0.0.1:2379"}},
//		Timings: site timings, Credentials: creds})
//	err = cfg.Validate()                                     // our checks: one line per problem, with the fix
//	err = cfg.WriteFile(yamlPath, owner)                     // atomic, 0600, keys sorted
//	err = cfg.ValidateWithPatroni(ctx, runner, exe, yamlPath) // first start only: it probes ports and the DCS
//	// run patroni.Command(exe, yamlPath) with patroni.Environ(home) as the system user
//	// through the service manager (Kind "patroni"), logging to cfg.Log.File()
//	client, err := patroni.ClientFor(cfg)
//	err = patroni.WaitStarted(ctx, client, cfg.Name, []string{cfg.Log.File()}) // progress at INFO, log lines at DEBUG
//
// Changing parameters: IsClusterWide says which parameters Patroni keeps
// cluster-wide (it drops them from a member's YAML): those go through
// Client.SetClusterParameters (PATCH /config) and reach every member; the
// others go to the member's postgresql.parameters followed by Client.Reload.
//
// Secrets: passwords are Secret values, masked by fmt, slog and
// encoding/json; only Config.Marshal/WriteFile and the credentials file hold
// them in clear, both with mode 0600.
//
// The tests run a real etcd and a two-member cluster of real Patroni and
// PostgreSQL 15 on 127.0.1.1 as the unprivileged user pgherd.
package patroni
