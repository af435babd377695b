package instance

import (
	"context"
	"fmt"
	"net"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	hbaconf "github.com/pgherd/pgherd/pkg/hba"
	"github.com/pgherd/pgherd/pkg/logging"
	"github.com/pgherd/pgherd/pkg/patroni"
	"github.com/pgherd/pgherd/pkg/safefs"
)

// A Patroni cluster's pg_hba has one source: the cluster-wide (dynamic)
// configuration, which every member, present and future, writes its
// pg_hba.conf from. A member's own postgresql.pg_hba would override it,
// so members made before pgherd kept pg_hba there are migrated: the
// first edit seeds the cluster-wide list from this member's own, then
// clears the own lists of the cluster's members on this host. (Members on
// other hosts are migrated when pghba runs there; until then they keep
// their own list.)

// PatroniHBATarget returns the pg_hba target of the Patroni cluster of
// member i. Its probes are pgherd's superuser on the socket and Patroni's
// replication and rewind users from every member's address.
func PatroniHBATarget(ctx context.Context, env *Env, i *Instance) (hbaconf.Target, error) {
	cfg, client, err := i.PatroniClient()
	if err != nil {
		return hbaconf.Target{}, err
	}
	cl, err := client.Cluster(ctx)
	if err != nil {
		return hbaconf.Target{}, fmt.Errorf("asking Patroni for the members of %s: %w", cfg.Scope, err)
	}
	a := cfg.PostgreSQL.Authentication
	probes := []hbaconf.Probe{{Local: true, Database: "postgres", User: a.Superuser.Username, Why: "the superuser connection of pgherd and Patroni"}}
	for _, m := range cl.Members {
		ip := net.ParseIP(m.Host)
		probes = append(probes,
			hbaconf.Probe{Address: ip, Database: "replication", User: a.Replication.Username, Why: "Patroni's replication from member " + m.Name},
			hbaconf.Probe{Address: ip, Database: "postgres", User: a.Rewind.Username, Why: "Patroni's pg_rewind from member " + m.Name})
	}
	var written []string
	t := hbaconf.Target{
		Probes: probes,
		Read: func() (string, error) {
			lines, ok, err := client.ClusterPgHBA(ctx)
			if err != nil {
				return "", err
			}
			if !ok {
				lines = cfg.PostgreSQL.PgHBA // to migrate: this member's own
			}
			return strings.Join(lines, "\n") + "\n", nil
		},
		Write: func(text string) error {
			f, err := hbaconf.Parse(text)
			if err != nil {
				return err
			}
			written = f.Lines()
			if err := client.SetClusterPgHBA(ctx, written); err != nil {
				return err
			}
			return migrateLocalMembers(ctx, env, cfg.Scope)
		},
		// Patroni reloads PostgreSQL itself once it has written the file;
		// what PostgreSQL then finds wrong in it puts the old list back.
		Errors: func(ctx context.Context) ([]string, error) {
			members, err := waitLocalHBA(ctx, env, cfg, written)
			if err != nil {
				return nil, err
			}
			for _, m := range members {
				if m.State() != Started {
					continue
				}
				if errs, err := m.HBAFileErrors(ctx, env); err != nil || len(errs) > 0 {
					return errs, err
				}
			}
			return nil, nil
		},
	}
	return t, nil
}

// migrateLocalMembers clears the own pg_hba of the cluster's members on
// this host and has their Patroni reload its file.
func migrateLocalMembers(ctx context.Context, env *Env, cluster string) error {
	all, err := List(env)
	if err != nil {
		return err
	}
	for _, m := range all {
		c, err := m.patroniConfig()
		if err != nil || c.Scope != cluster {
			continue
		}
		cleared, err := patroni.ClearLocalPgHBA(m.PatroniConfig)
		if err != nil {
			return err
		}
		if !cleared {
			continue
		}
		logging.From(ctx).Info(fmt.Sprintf("member %s now takes pg_hba from the cluster-wide configuration", c.Name))
		if _, mc, err := m.PatroniClient(); err == nil {
			if err := mc.Reload(ctx); err != nil {
				return fmt.Errorf("reloading Patroni of %s: %w", m.ID(), err)
			}
		}
	}
	return nil
}

// waitLocalHBA waits, for up to two HA loops and a margin, until every
// member of the cluster on this host has written want into its
// pg_hba.conf (Patroni then reloads PostgreSQL itself).
func waitLocalHBA(ctx context.Context, env *Env, cfg *patroni.Config, want []string) ([]*Instance, error) {
	all, err := List(env)
	if err != nil {
		return nil, err
	}
	var members []*Instance
	for _, m := range all {
		if c, err := m.patroniConfig(); err == nil && c.Scope == cfg.Scope {
			members = append(members, m)
		}
	}
	loop := cfg.Bootstrap.DCS.LoopWait
	if loop <= 0 {
		loop = 10
	}
	deadline := time.Now().Add(time.Duration(2*loop+10) * time.Second)
	for _, m := range members {
		path := filepath.Join(m.DataDir, "pg_hba.conf")
		for {
			text, err := safefs.ReadOwned(path, env.User.FileOwner())
			if err == nil {
				if f, perr := hbaconf.Parse(text); perr == nil && slices.Equal(f.Lines(), want) {
					logging.From(ctx).Info("pg_hba.conf of member " + m.ID() + " has the new entries")
					break
				}
			}
			if time.Now().After(deadline) {
				return nil, fmt.Errorf("Patroni did not write the new pg_hba into %s in time; see 'pgherd patroni logs %s'", path, m.ID())
			}
			select {
			case <-ctx.Done():
				return nil, ctx.Err()
			case <-time.After(200 * time.Millisecond):
			}
		}
	}
	return members, nil
}

// HBAFileErrors asks the running server what it finds wrong in the
// pg_hba.conf on disk (pg_hba_file_rules), one "line N: error" each.
func (i *Instance) HBAFileErrors(ctx context.Context, env *Env) ([]string, error) {
	conn, err := i.Connect(ctx, env)
	if err != nil {
		return nil, err
	}
	defer conn.Close(ctx)
	rows, err := conn.Query(ctx, `select format('line %s: %s', line_number, error) from pg_hba_file_rules where error is not null order by line_number`)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowTo[string])
}
