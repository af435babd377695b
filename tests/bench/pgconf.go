package main

import (
	"context"
	"path/filepath"
	"strconv"
	"time"
)

func init() {
	benches = append(benches, bench{
		name: "pgconf set work_mem=8MB vs psql ALTER SYSTEM + pg_reload_conf()", goal: "≤ 1.5", run: benchPgconfSet,
	})
}

// benchPgconfSet changes work_mem on a running instance: pgherd validates
// the value against pg_settings (postgres -C where that cannot decide),
// writes postgresql.conf, reloads and waits for the server to have loaded
// it; psql has the server write postgresql.auto.conf and signals the
// reload without waiting. Each pgherd run changes the value (8MB, 9MB,
// ...), so none is a no-op; after each psql run, an untimed ALTER SYSTEM
// RESET keeps postgresql.auto.conf from overriding.
func benchPgconfSet(ctx context.Context, h *harness) (result, error) {
	port := 55440
	dir := filepath.Join(h.work, "pgconf")
	env, err := h.siteEnv(dir, port)
	if err != nil {
		return result{}, err
	}
	if _, err := h.timeCmd(ctx, env, false, h.pgherd, "-q", "instance", "create", "pg1", "--port", strconv.Itoa(port)); err != nil {
		return result{}, err
	}
	defer h.timeCmd(ctx, env, false, h.pgherd, "-q", "instance", "drop", "pg1", "--yes")
	psql := func(sql ...string) (time.Duration, error) {
		args := []string{filepath.Join(bindir, "psql"), "-h", filepath.Join(dir, "run", "postgresql"),
			"-p", strconv.Itoa(port), "-U", "postgres", "-d", "postgres", "-X", "-q"}
		for _, s := range sql {
			args = append(args, "-c", s)
		}
		return h.timeCmd(ctx, nil, false, args...)
	}
	runs := h.runs * 4
	var mine, ref []time.Duration
	for n := 0; n < runs; n++ {
		d, err := h.timeCmd(ctx, env, false, h.pgherd, "-q", "pgconf", "-i", "pg1", "set", "work_mem="+strconv.Itoa(8+n%2)+"MB")
		if err != nil {
			return result{}, err
		}
		mine = append(mine, d)
		if d, err = psql("ALTER SYSTEM SET work_mem='8MB'", "SELECT pg_reload_conf()"); err != nil {
			return result{}, err
		}
		ref = append(ref, d)
		if _, err := psql("ALTER SYSTEM RESET work_mem", "SELECT pg_reload_conf()"); err != nil {
			return result{}, err
		}
	}
	return result{pgherd: median(mine), reference: median(ref), runs: runs, note: "running instance, Unix socket; pgherd waits for the reload"}, nil
}
