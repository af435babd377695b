package instance

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/pgherd/pgherd/pkg/patroni"
)

// Description is what 'instance get' reports. Its JSON shape is documented
// in docs/json.md and pinned by golden tests.
type Description struct {
	Name           string            `json:"name"`
	Version        string            `json:"version"`
	Port           int               `json:"port"`
	DataDirectory  string            `json:"data_directory"`
	WALDirectory   string            `json:"wal_directory"`
	SocketDir      string            `json:"socket_directory"`
	State          State             `json:"state"`
	PendingRestart bool              `json:"pending_restart"`
	DataChecksums  *bool             `json:"data_checksums"`
	Locale         *string           `json:"locale"`
	Encoding       *string           `json:"encoding"`
	Settings       map[string]string `json:"settings"`
	// Patroni is set for a Patroni member (from its YAML and REST API).
	Patroni *patroni.Info `json:"patroni,omitempty"`
	// Standby is set for a running standby of a plain instance.
	Standby *Standby `json:"standby,omitempty"`
}

// Describe reads an instance's state and settings: from the running server
// when it runs, from its files otherwise.
func Describe(ctx context.Context, env *Env, i *Instance) (*Description, error) {
	d := &Description{
		Name: i.Name, Version: i.Version, Port: i.Port,
		DataDirectory: i.DataDir, WALDirectory: i.WALDir, SocketDir: i.SocketDir,
		State: i.State(), Settings: map[string]string{},
	}
	if i.PatroniManaged() {
		d.Patroni = describePatroni(ctx, env, i)
	}
	if d.State == Started {
		return d, describeRunning(ctx, env, i, d)
	}
	if i.Conf == nil { // an instance that Find or List did not read
		if _, err := load(i); err != nil {
			return nil, err
		}
	}
	conf := fileSettings(i.Conf)
	d.Settings = conf
	if v, ok := conf["lc_messages"]; ok {
		d.Locale = &v
	}
	d.DataChecksums = checksumsFromControl(ctx, env, i)
	return d, nil
}

func describeRunning(ctx context.Context, env *Env, i *Instance, d *Description) error {
	conn, err := i.Connect(ctx, env)
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	// Settings that a configuration file, the command line or the
	// environment set (the same set the files give for a stopped instance),
	// and the instance's state, in one pass over pg_settings: every
	// parameter that waits for a restart is among the rows, so
	// pending_restart is true when any row says so.
	rows, err := conn.Query(ctx, `SELECT lower(name), current_setting(name),
		source IN ('configuration file', 'command line', 'environment variable'), pending_restart
		FROM pg_settings WHERE source IN ('configuration file', 'command line', 'environment variable')
		OR pending_restart OR name IN ('data_checksums', 'lc_collate', 'server_encoding')`)
	if err != nil {
		return fmt.Errorf("reading settings of %s: %w", i.ID(), err)
	}
	var k, v string
	var fromFiles, pending bool
	state := map[string]string{}
	if _, err := pgx.ForEachRow(rows, []any{&k, &v, &fromFiles, &pending}, func() error {
		if fromFiles {
			d.Settings[k] = v
		}
		d.PendingRestart = d.PendingRestart || pending
		state[k] = v
		return nil
	}); err != nil {
		return fmt.Errorf("reading settings of %s: %w", i.ID(), err)
	}
	// A parameter this server does not have stays null (unknown).
	if v, ok := state["data_checksums"]; ok {
		on := v == "on"
		d.DataChecksums = &on
	}
	if v, ok := state["lc_collate"]; ok {
		d.Locale = &v
	}
	if v, ok := state["server_encoding"]; ok {
		d.Encoding = &v
	}
	if !i.PatroniManaged() {
		d.Standby, err = describeStandby(ctx, conn)
	}
	return err
}

// checksumsFromControl asks pg_controldata whether data pages carry checksums.
func checksumsFromControl(ctx context.Context, env *Env, i *Instance) *bool {
	res, err := env.Runner.Run(ctx, runCmd([]string{filepath.Join(i.BinDir, "pg_controldata"), i.DataDir}, ""))
	if err != nil {
		return nil
	}
	for _, line := range strings.Split(res.Stdout, "\n") {
		if v, ok := strings.CutPrefix(line, "Data page checksum version:"); ok {
			on := strings.TrimSpace(v) != "0"
			return &on
		}
	}
	return nil
}

// LibpqEnv returns the libpq environment that reaches the instance as its
// superuser, one NAME=value each, with PGDATA for the server programs
// (pg_controldata, pg_ctl).
func LibpqEnv(env *Env, i *Instance) []string {
	out := []string{
		"PGHOST=" + i.SocketDir,
		"PGPORT=" + strconv.Itoa(i.Port),
		"PGUSER=" + env.Site.PostgreSQL.Surole.Name,
		"PGDATABASE=postgres",
		"PGDATA=" + i.DataDir,
	}
	if p := i.existingPassFile(); p != "" {
		out = append(out, "PGPASSFILE="+p)
	}
	if cfg, err := i.patroniConfig(); err == nil {
		out = append(out, patroni.EnvVars(cfg, i.PatroniConfig)...)
	}
	return out
}

// ExecEnv is environ with the instance's libpq variables and its binaries
// first in PATH.
func ExecEnv(env *Env, i *Instance, environ []string) []string {
	var out []string
	for _, kv := range environ {
		if !strings.HasPrefix(kv, "PG") && !strings.HasPrefix(kv, "PATH=") {
			out = append(out, kv)
		}
	}
	path := i.BinDir
	for _, kv := range environ {
		if p, ok := strings.CutPrefix(kv, "PATH="); ok {
			path += ":" + p
		}
	}
	return append(append(out, "PATH="+path), LibpqEnv(env, i)...)
}
