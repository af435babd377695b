// Package patroni is everything pgherd knows about Patroni 3.0.x: the member
// configuration it generates, the checks it makes before Patroni sees it,
// the passwords a cluster shares, what the DCS holds about a cluster, and a
// client for the REST API, the only way pgherd acts on a running Patroni.
// It knows nothing of instances, site settings or services: pkg/instance
// (patroni.go) builds on it.
//
// Creating a member (what `instance create --patroni-cluster` does):
//
//	creds, created, err := patroni.LoadOrCreateCredentials(credFile, owner) // 0600; one file per cluster, the same on every member
//	cfg := patroni.New(patroni.Spec{Cluster: "main", Node: "pg1", RestAPIConnect: "127.0.1.1:8008",
//		PGConnectHost: "127.0.1.1", PGPort: 5432, DataDir: ..., BinDir: ..., SocketDir: ...,
//		PgPass: ..., LogDir: ..., Etcd: patroni.Etcd3{Hosts: []string{"127.0.0.1:2379"}},
//		Timings: patroni.Timings{TTL: 30, LoopWait: 10, RetryTimeout: 10}, Credentials: creds})
//	err = cfg.Validate()                                         // our checks: one line per problem, with the fix
//	err = patroni.CheckDCSReachable(ctx, cfg, 5*time.Second)     // bounded wait
//	st, err := patroni.ReadDCSState(ctx, cfg)                    // bootstrap or join? name in use?
//	err = cfg.ValidateBeforeDCS(ctx, runner, exe, yamlPath, owner) // before the DCS join: it probes ports, not the DCS
//	err = cfg.WriteFile(yamlPath, owner)                         // atomic, 0600, keys sorted
//	// run patroni.Command(exe, yamlPath) as the system user, with nothing of
//	// pgherd's environment (service.Service{Kind: "patroni", ...})
//	client, err := patroni.ClientFor(cfg)
//	err = patroni.WaitStarted(ctx, client, cfg.Name, true, []string{cfg.Log.File()}) // progress at INFO, log lines at DEBUG
//
// Operating a cluster: Client.Cluster (members, roles, lag; Cluster.List
// gives `patroni list` rows), Switchover, Failover, Reinitialize, Restart,
// Reload, Pause/Resume with WaitPaused, WaitHealthy after a change of
// leader; Describe for `instance get`; Tail and Follower for the logs;
// BackupFile and PurgeDCS when the last member goes; EnvVars for patronictl.
//
// Changing parameters: IsClusterWide says which parameters Patroni keeps
// cluster-wide (it ignores them in a member's YAML) and CheckClusterWide
// which values it would silently ignore; those go through
// Client.SetClusterParameters (PATCH /config) and reach every member; the
// others through SetLocalParameters (the member's YAML) and Client.Reload.
//
// Secrets: passwords are Secret values, masked by fmt, slog and
// encoding/json; only Config.Marshal/WriteFile and the credentials file hold
// them in clear, both with mode 0600.
//
// The tests run a real etcd and a two-member cluster of real Patroni and
// PostgreSQL 15 on 127.0.1.1 as the unprivileged user pgherd.
package patroni
