package instance

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/pgherd/pgherd/pkg/logging"
	"github.com/pgherd/pgherd/pkg/run"
)

// A physical standby of a plain instance is made by pg_basebackup from its
// primary (-R writes standby.signal and primary_conninfo, --create-slot a
// replication slot on the primary), then configured and started as any
// instance. pgherd never runs Patroni for it: promote is explicit.

// ErrNotStandby is returned when promoting an instance that is not a standby.
var ErrNotStandby = errors.New("instance is not a standby")

// checkStandbyRequest refuses what a standby cannot be.
func checkStandbyRequest(req CreateRequest) (*pgconn.Config, error) {
	if req.Patroni != nil {
		return nil, errors.New("--standby-for and --patroni-cluster contradict each other: Patroni makes its own replicas")
	}
	if req.Slot != "" && req.StandbyFor == "" {
		return nil, errors.New("--slot needs --standby-for")
	}
	cfg, err := pgconn.ParseConfig(req.StandbyFor)
	if err != nil {
		return nil, fmt.Errorf("--standby-for is not a libpq connection string or URI: %w", errors.Unwrap(err))
	}
	return cfg, nil
}

// basebackup fills the new data directory from the primary.
func basebackup(ctx context.Context, env *Env, i *Instance, req CreateRequest, primary *pgconn.Config) error {
	logging.From(ctx).Info(fmt.Sprintf("cloning PostgreSQL instance %s from %s:%d with pg_basebackup", i.ID(), primary.Host, primary.Port))
	args := []string{filepath.Join(i.BinDir, "pg_basebackup"),
		"--pgdata", i.DataDir, "--waldir", i.WALDir, "--dbname", req.StandbyFor,
		"--wal-method", "stream", "--write-recovery-conf", "--checkpoint", "fast", "--no-sync"}
	if req.Slot != "" {
		args = append(args, "--slot", req.Slot, "--create-slot")
	}
	c := run.Cmd{Args: args, Redact: []string{primary.Password}}
	if primary.Password == "" {
		c.Redact = nil
	}
	if _, err := env.Runner.Run(ctx, c); err != nil {
		return fmt.Errorf("pg_basebackup of %s from its primary failed: %w", i.ID(), err)
	}
	return nil
}

// Standby is what 'instance get' shows of a running standby: its
// upstream (from pg_stat_wal_receiver) and how far behind it is.
type Standby struct {
	Upstream   string  `json:"upstream"` // HOST:PORT the WAL comes from; "" when not streaming
	Status     string  `json:"status"`   // streaming, catchup...; "" when not streaming
	Slot       *string `json:"slot"`
	ReceiveLag *int64  `json:"receive_lag_bytes"` // received but not replayed
	ReplayAge  *string `json:"replay_delay"`      // since the last replayed transaction
}

// describeStandby reads the standby part of a running instance; nil for a
// primary.
func describeStandby(ctx context.Context, conn *pgx.Conn) (*Standby, error) {
	var inRecovery bool
	if err := conn.QueryRow(ctx, `select pg_is_in_recovery()`).Scan(&inRecovery); err != nil || !inRecovery {
		return nil, err
	}
	s := &Standby{}
	err := conn.QueryRow(ctx, `
select coalesce((select sender_host || ':' || sender_port from pg_stat_wal_receiver), ''),
       coalesce((select status from pg_stat_wal_receiver), ''),
       (select slot_name from pg_stat_wal_receiver),
       pg_wal_lsn_diff(pg_last_wal_receive_lsn(), pg_last_wal_replay_lsn())::bigint,
       (now() - pg_last_xact_replay_timestamp())::text`).Scan(&s.Upstream, &s.Status, &s.Slot, &s.ReceiveLag, &s.ReplayAge)
	if err != nil {
		return nil, fmt.Errorf("reading the standby state: %w", err)
	}
	return s, nil
}

// Promote makes a running standby of a plain instance a primary and waits
// until it accepts writes.
func Promote(ctx context.Context, env *Env, i *Instance) error {
	if i.PatroniManaged() {
		return fmt.Errorf("instance %s is a Patroni member: Patroni decides who is primary; use 'pgherd patroni switchover' or 'pgherd patroni failover'", i.ID())
	}
	if i.State() != Started {
		return fmt.Errorf("instance %s is not running: start it with 'pgherd instance start %s'", i.ID(), i.ID())
	}
	conn, err := i.Connect(ctx, env)
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	var inRecovery bool
	if err := conn.QueryRow(ctx, `select pg_is_in_recovery()`).Scan(&inRecovery); err != nil {
		return err
	}
	if !inRecovery {
		return fmt.Errorf("%w: %s already accepts writes", ErrNotStandby, i.ID())
	}
	logging.From(ctx).Info("promoting PostgreSQL instance " + i.ID())
	var ok bool
	if err := conn.QueryRow(ctx, `select pg_promote(true, 60)`).Scan(&ok); err != nil {
		return fmt.Errorf("promoting %s: %w", i.ID(), err)
	}
	if !ok {
		return fmt.Errorf("%s did not finish its promotion within 60 s; see 'pgherd instance logs %s'", i.ID(), i.ID())
	}
	return nil
}
