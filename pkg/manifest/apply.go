package manifest

import (
	"context"
	"fmt"
	"path/filepath"

	"github.com/jackc/pgx/v5"
	"github.com/pgherd/pgherd/pkg/database"
	"github.com/pgherd/pgherd/pkg/hba"
	"github.com/pgherd/pgherd/pkg/role"
)

// Target is the instance a manifest converges.
type Target struct {
	Conn    *pgx.Conn          // superuser, database postgres
	Connect database.Connector // to any database
	// Protected are the roles that must never be dropped or have their
	// password set here, with the reason.
	Protected map[string]string
	// HBA is the instance's pg_hba (its cluster's, for a Patroni member).
	HBA hba.Target
	// ReadSecret reads the first line of a password file.
	ReadSecret func(path string) (string, error)
}

// Change is one thing apply changed or, in a dry run, would change.
type Change struct {
	Kind   string `json:"kind"` // role, database or pg_hba
	Name   string `json:"name"`
	Change string `json:"change"`
}

// plan is every statement of an apply, made before any runs.
type plan struct {
	roleSteps []role.Step
	dbs       []dbPlan
	hbaOps    []hbaOp // the pg_hba entries that change, in manifest order
	dropDBs   []database.DropRequest
	dropRoles []string
	changes   []Change
}

type hbaOp struct {
	entry  hba.Entry
	absent bool
}

// apply makes the change on f and reports whether it changed anything.
func (o hbaOp) apply(f *hba.File) bool {
	if o.absent {
		return f.Remove(o.entry) > 0
	}
	return f.Add(o.entry, false)
}

type dbPlan struct {
	name  string
	steps []database.Step
}

// Apply converges t to m and returns what it changed; with dryRun it
// changes nothing and returns what it would change. Every input is
// checked first: a manifest with any error changes nothing.
func Apply(ctx context.Context, t Target, m *Manifest, dryRun bool) ([]Change, error) {
	p, err := makePlan(ctx, t, m)
	if err != nil {
		return nil, err
	}
	if dryRun {
		return p.changes, nil
	}
	return p.changes, p.run(ctx, t)
}

func makePlan(ctx context.Context, t Target, m *Manifest) (*plan, error) {
	p := &plan{changes: []Change{}}
	roles, err := role.List(ctx, t.Conn)
	if err != nil {
		return nil, err
	}
	byName := map[string]*role.Role{}
	for _, r := range roles {
		byName[r.Name] = r
	}
	var grants []role.Step
	var grantChanges []Change
	for _, r := range m.Roles {
		if err := role.CheckName("role", r.Name); err != nil {
			return nil, err
		}
		if r.State == "absent" {
			if why, ok := t.Protected[r.Name]; ok {
				return nil, fmt.Errorf("role %q: refusing to drop it: %s", r.Name, why)
			}
			if byName[r.Name] != nil {
				deps, err := role.FindDependents(ctx, t.Conn, r.Name)
				if err != nil {
					return nil, err
				}
				if len(deps) > 0 {
					return nil, fmt.Errorf("role %q: refusing to drop it: it %s; reassign or drop them first ('pgherd role drop %s --reassign-to ROLE')", r.Name, deps, r.Name)
				}
				p.dropRoles = append(p.dropRoles, r.Name)
			}
			continue
		}
		spec := role.Spec{Name: r.Name, Login: r.Login, Superuser: r.Superuser, CreateDB: r.CreateDB, CreateRole: r.CreateRole,
			Replication: r.Replication, Inherit: r.Inherit, ConnectionLimit: r.ConnectionLimit, ValidUntil: r.ValidUntil}
		if r.InRoles != nil {
			in := r.InRoles
			spec.InRoles = &in
		}
		if r.PasswordFile != "" {
			if why, ok := t.Protected[r.Name]; ok {
				return nil, fmt.Errorf("role %q: refusing to set its password: %s", r.Name, why)
			}
			path := r.PasswordFile
			if !filepath.IsAbs(path) {
				path = filepath.Join(m.dir, path)
			}
			pw, err := t.ReadSecret(path)
			if err != nil {
				return nil, fmt.Errorf("role %q: %w", r.Name, err)
			}
			spec.Password = role.NewSecret(pw)
		}
		steps, err := role.Plan(byName[r.Name], spec)
		if err != nil {
			return nil, fmt.Errorf("role %q: %w", r.Name, err)
		}
		if why, ok := t.Protected[r.Name]; ok && len(steps) > 0 {
			return nil, fmt.Errorf("role %q: refusing to %s: %s", r.Name, steps[0].Desc, why)
		}
		for _, s := range steps {
			if s.Membership {
				grants = append(grants, s)
				grantChanges = append(grantChanges, Change{"role", r.Name, s.Desc})
				continue
			}
			p.roleSteps = append(p.roleSteps, s)
			p.changes = append(p.changes, Change{"role", r.Name, s.Desc})
		}
	}
	// Memberships once every role of the manifest exists.
	p.roleSteps = append(p.roleSteps, grants...)
	p.changes = append(p.changes, grantChanges...)
	if err := p.planDatabases(ctx, t, m); err != nil {
		return nil, err
	}
	if err := p.planHBA(t, m); err != nil {
		return nil, err
	}
	// Drops come last, databases before roles (a role may own one).
	for _, d := range p.dropDBs {
		p.changes = append(p.changes, Change{"database", d.Name, "drop database " + d.Name})
	}
	for _, r := range p.dropRoles {
		p.changes = append(p.changes, Change{"role", r, "drop role " + r})
	}
	return p, nil
}

func (p *plan) planDatabases(ctx context.Context, t Target, m *Manifest) error {
	dbs, err := database.List(ctx, t.Conn)
	if err != nil {
		return err
	}
	byName := map[string]*database.Database{}
	for _, d := range dbs {
		byName[d.Name] = d
	}
	for _, d := range m.Databases {
		if err := role.CheckName("database", d.Name); err != nil {
			return err
		}
		cur := byName[d.Name]
		if d.State == "absent" {
			for _, prot := range database.Protected {
				if d.Name == prot {
					return fmt.Errorf("database %q: refusing to drop it: pgherd, Patroni and new databases depend on it", d.Name)
				}
			}
			if cur != nil {
				if cur.Sessions > 0 {
					return fmt.Errorf("database %q: refusing to drop it: it has %d session(s); end them first (or 'pgherd database drop --force')", d.Name, cur.Sessions)
				}
				p.dropDBs = append(p.dropDBs, database.DropRequest{Name: d.Name})
			}
			continue
		}
		// Schemas and extensions are read only where the manifest lists
		// some: one connection per such database, none for the others.
		if cur != nil && (len(d.Schemas) > 0 || len(d.Extensions) > 0) {
			c, err := t.Connect(ctx, d.Name)
			if err != nil {
				return err
			}
			cur.Schemas, cur.Extensions, err = database.Contents(ctx, c)
			c.Close(ctx)
			if err != nil {
				return err
			}
		}
		spec := database.Spec{Name: d.Name, Owner: d.Owner, Encoding: d.Encoding, Locale: d.Locale, Tablespace: d.Tablespace, Schemas: d.Schemas, Extensions: d.Extensions}
		steps, err := database.Plan(cur, spec)
		if err != nil {
			return fmt.Errorf("database %q: %w", d.Name, err)
		}
		if len(steps) > 0 {
			p.dbs = append(p.dbs, dbPlan{d.Name, steps})
		}
		for _, s := range steps {
			p.changes = append(p.changes, Change{"database", d.Name, s.Desc})
		}
	}
	return nil
}

func (p *plan) planHBA(t Target, m *Manifest) error {
	if len(m.PgHBA) == 0 {
		return nil
	}
	text, err := t.HBA.Read()
	if err != nil {
		return err
	}
	f, err := hba.Parse(text)
	if err != nil {
		return err
	}
	for i, me := range m.PgHBA {
		e := hba.Entry{Type: me.Type, Database: hba.QuoteNames(orAll(me.Database)), User: hba.QuoteNames(orAll(me.User)), Address: me.Address, Method: me.Method}
		if e.Type == "" {
			e.Type = "host"
		}
		if err := hba.Check(e); err != nil {
			return fmt.Errorf("pg_hba[%d]: %w", i, err)
		}
		op := hbaOp{entry: e, absent: me.State == "absent"}
		if op.apply(f) {
			p.hbaOps = append(p.hbaOps, op)
			verb := "add "
			if op.absent {
				verb = "remove "
			}
			p.changes = append(p.changes, Change{"pg_hba", "pg_hba.conf", verb + e.Format()})
		}
	}
	if len(p.hbaOps) == 0 {
		return nil
	}
	before, _ := hba.Parse(text)
	return hba.CheckLockout(before, f, t.HBA.Probes)
}

func orAll(names []string) []string {
	if len(names) == 0 {
		return []string{"all"}
	}
	return names
}

// run carries a plan out: the role changes in one transaction, each
// database's, pg_hba, then drops. When a step fails, the error says what
// was done before it.
func (p *plan) run(ctx context.Context, t Target) error {
	done := 0
	fail := func(err error) error {
		if done == 0 {
			return fmt.Errorf("%w; nothing was changed", err)
		}
		return fmt.Errorf("%w; the %d change(s) before it were made", err, done)
	}
	if err := role.Exec(ctx, t.Conn, p.roleSteps); err != nil {
		return fail(err)
	}
	done += len(p.roleSteps)
	for _, d := range p.dbs {
		if err := database.Exec(ctx, t.Conn, t.Connect, d.name, d.steps); err != nil {
			return fail(err)
		}
		done += len(d.steps)
	}
	if len(p.hbaOps) > 0 {
		err := hba.Edit(ctx, t.HBA, func(f *hba.File) error {
			for _, op := range p.hbaOps {
				op.apply(f)
			}
			return nil
		})
		if err != nil {
			return fail(err)
		}
		done += len(p.hbaOps)
	}
	for _, d := range p.dropDBs {
		if _, err := database.Drop(ctx, t.Conn, d); err != nil {
			return fail(err)
		}
		done++
	}
	for _, r := range p.dropRoles {
		if _, err := role.Drop(ctx, t.Conn, role.DropRequest{Name: r, Protected: t.Protected}); err != nil {
			return fail(err)
		}
		done++
	}
	return nil
}
