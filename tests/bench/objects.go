package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

func init() {
	benches = append(benches,
		bench{name: "objects: role get vs psql -Atc on pg_authid", goal: "≤ 1.5", run: objectsBench(
			[]string{"role", "get", "app"},
			`select rolname, rolcanlogin, rolsuper, rolcreatedb, rolcreaterole, rolreplication, rolinherit, rolconnlimit, rolvaliduntil from pg_authid where rolname = 'app'`)},
		bench{name: "objects: database list vs psql -Atc on pg_database", goal: "≤ 1.5", run: objectsBench(
			[]string{"database", "list"},
			`select datname, pg_get_userbyid(datdba), pg_encoding_to_char(encoding), datcollate, datctype, pg_database_size(oid) from pg_database where not datistemplate`)},
		bench{name: "objects: pghba list vs psql -Atc on pg_hba_file_rules", goal: "≤ 1.5", run: objectsBench(
			[]string{"pghba", "list"}, `select * from pg_hba_file_rules`)},
		bench{name: "objects: apply of a converged 50-role, 20-database manifest vs psql reading both lists", goal: "< 500 ms", run: benchApplyConverged},
	)
}

const objectsPort = 55450

// withObjectsInstance runs fn with an instance pg1 holding a role app,
// dropped afterwards.
func withObjectsInstance(ctx context.Context, h *harness, fn func(env []string) (result, error)) (result, error) {
	env, err := h.siteEnv(filepath.Join(h.work, "objects"), objectsPort)
	if err != nil {
		return result{}, err
	}
	if _, err := h.timeCmd(ctx, env, false, h.pgherd, "-q", "instance", "create", "pg1", "--port", strconv.Itoa(objectsPort)); err != nil {
		return result{}, err
	}
	defer h.timeCmd(ctx, env, false, h.pgherd, "-q", "instance", "drop", "pg1", "--yes")
	if _, err := h.timeCmd(ctx, env, false, h.pgherd, "-q", "role", "create", "app", "-i", "pg1", "--login"); err != nil {
		return result{}, err
	}
	return fn(env)
}

func (h *harness) objectsPsql(ctx context.Context, sql string) (time.Duration, error) {
	return h.timeCmd(ctx, nil, false, filepath.Join(bindir, "psql"), "-h", filepath.Join(h.work, "objects", "run", "postgresql"),
		"-p", strconv.Itoa(objectsPort), "-U", "postgres", "-d", "postgres", "-X", "-Atc", sql)
}

// objectsBench times 'pgherd ARGS -i pg1' against psql -Atc running the
// query pgherd's answer comes from.
func objectsBench(args []string, sql string) func(context.Context, *harness) (result, error) {
	return func(ctx context.Context, h *harness) (result, error) {
		return withObjectsInstance(ctx, h, func(env []string) (result, error) {
			runs := h.runs * 4
			var mine, ref []time.Duration
			for n := 0; n < runs; n++ {
				d, err := h.timeCmd(ctx, env, false, append(append([]string{h.pgherd}, args...), "-i", "pg1")...)
				if err != nil {
					return result{}, err
				}
				mine = append(mine, d)
				if d, err = h.objectsPsql(ctx, sql); err != nil {
					return result{}, err
				}
				ref = append(ref, d)
			}
			return result{pgherd: median(mine), reference: median(ref), runs: runs, note: "whole process, Unix socket"}, nil
		})
	}
}

// benchApplyConverged applies a 50-role, 20-database manifest (each
// database with an owner, a schema and an extension) once untimed, then
// times applying it again, which changes nothing; the reference is psql
// reading the role and database lists.
func benchApplyConverged(ctx context.Context, h *harness) (result, error) {
	return withObjectsInstance(ctx, h, func(env []string) (result, error) {
		var m strings.Builder
		m.WriteString("roles:\n")
		for i := 0; i < 50; i++ {
			fmt.Fprintf(&m, "  - name: role%02d\n    login: true\n    connection_limit: 5\n    in_roles: [app]\n", i)
		}
		m.WriteString("databases:\n")
		for i := 0; i < 20; i++ {
			fmt.Fprintf(&m, "  - name: db%02d\n    owner: role%02d\n    schemas: [app]\n    extensions: [hstore]\n", i, i)
		}
		file := filepath.Join(h.work, "objects", "manifest.yaml")
		if err := os.WriteFile(file, []byte(m.String()), 0o644); err != nil {
			return result{}, err
		}
		apply := []string{h.pgherd, "-q", "apply", "-i", "pg1", "-f", file}
		if _, err := h.timeCmd(ctx, env, false, apply...); err != nil {
			return result{}, err
		}
		var mine, ref []time.Duration
		for n := 0; n < h.runs; n++ {
			d, err := h.timeCmd(ctx, env, false, apply...)
			if err != nil {
				return result{}, err
			}
			mine = append(mine, d)
			if d, err = h.objectsPsql(ctx, "select * from pg_authid; select * from pg_database"); err != nil {
				return result{}, err
			}
			ref = append(ref, d)
		}
		return result{pgherd: median(mine), reference: median(ref), runs: h.runs, note: "already converged: pgherd reads all roles in one query, all databases in one, and the schemas and extensions of the 20 databases"}, nil
	})
}
