// Package role manages the roles of a running PostgreSQL instance: create,
// alter, inspect, list and drop, with names always quoted as identifiers
// and passwords sent only as SCRAM-SHA-256 verifiers computed here, so that
// neither a statement log nor an error can carry one in clear.
package role

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// ErrNotFound is returned for a role that does not exist.
var ErrNotFound = errors.New("role not found")

// Role is a role as PostgreSQL has it. It never carries a password, only
// whether one is set.
type Role struct {
	Name            string   `json:"name"`
	Login           bool     `json:"login"`
	Superuser       bool     `json:"superuser"`
	CreateDB        bool     `json:"createdb"`
	CreateRole      bool     `json:"createrole"`
	Replication     bool     `json:"replication"`
	Inherit         bool     `json:"inherit"`
	ConnectionLimit int      `json:"connection_limit"` // -1: no limit
	ValidUntil      *string  `json:"valid_until"`      // nil: forever; else "infinity" or UTC RFC 3339
	HasPassword     bool     `json:"has_password"`
	InRoles         []string `json:"in_roles"`

	verifier string // rolpassword, to tell whether a given password is the one set
}

// Spec says what a role should be. A nil field leaves the attribute as it
// is (on create: PostgreSQL's default).
type Spec struct {
	Name            string
	Login           *bool
	Superuser       *bool
	CreateDB        *bool
	CreateRole      *bool
	Replication     *bool
	Inherit         *bool
	ConnectionLimit *int
	// ValidUntil is "infinity" or a timestamp (2026-12-31, RFC 3339, or
	// "2026-12-31 12:00"); "" leaves it.
	ValidUntil string
	// Password, when set, is the password the role must have.
	Password *Secret
	// InRoles, when not nil, is the complete set of roles it is a member
	// of: missing ones are granted, others revoked.
	InRoles *[]string
	// GrantRoles and RevokeRoles add and remove single memberships.
	GrantRoles, RevokeRoles []string
}

// Secret holds a password. It prints as "********" in every format, so it
// cannot reach a log line, an error or -o json by accident.
type Secret struct{ value string }

// NewSecret wraps a password.
func NewSecret(s string) *Secret { return &Secret{value: s} }

func (Secret) String() string               { return "********" }
func (Secret) GoString() string             { return "********" }
func (Secret) MarshalJSON() ([]byte, error) { return []byte(`"********"`), nil }
func (Secret) MarshalText() ([]byte, error) { return []byte("********"), nil }

// Reveal returns the password, for the one place that must write it: a
// pgpass file.
func (s *Secret) Reveal() string { return s.value }

// CheckName refuses a name PostgreSQL would truncate or cannot hold. Any
// other name (spaces, capitals, quotes) is used exactly as given.
func CheckName(kind, name string) error {
	switch {
	case name == "":
		return fmt.Errorf("%s name is empty", kind)
	case strings.ContainsRune(name, 0):
		return fmt.Errorf("%s name %q holds a NUL byte, which PostgreSQL cannot store", kind, name)
	case len(name) > 63:
		return fmt.Errorf("%s name %q is %d bytes long: PostgreSQL would cut it to 63; choose a shorter one", kind, name, len(name))
	}
	return nil
}

// Ident quotes name as an SQL identifier.
func Ident(name string) string { return pgx.Identifier{name}.Sanitize() }

// Literal quotes s as an SQL string literal (standard_conforming_strings on).
func Literal(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

const selectRoles = `
select r.rolname, r.rolcanlogin, r.rolsuper, r.rolcreatedb, r.rolcreaterole,
       r.rolreplication, r.rolinherit, r.rolconnlimit,
       case when r.rolvaliduntil is null then null
            when r.rolvaliduntil = 'infinity' then 'infinity'
            else to_char(r.rolvaliduntil at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"') end,
       coalesce(r.rolpassword, ''),
       array(select g.rolname::text from pg_auth_members m join pg_roles g on g.oid = m.roleid
             where m.member = r.oid order by 1)
from pg_authid r`

// List returns every role but PostgreSQL's own (pg_*), by name, in one query.
func List(ctx context.Context, conn *pgx.Conn) ([]*Role, error) {
	return query(ctx, conn, selectRoles+` where r.rolname !~ '^pg_' order by r.rolname`)
}

// Get returns one role, or an error wrapping ErrNotFound.
func Get(ctx context.Context, conn *pgx.Conn, name string) (*Role, error) {
	rs, err := query(ctx, conn, selectRoles+` where r.rolname = $1`, name)
	if err != nil {
		return nil, err
	}
	if len(rs) == 0 {
		return nil, fmt.Errorf("%w: %q; see 'pgherd role list'", ErrNotFound, name)
	}
	return rs[0], nil
}

func query(ctx context.Context, conn *pgx.Conn, sql string, args ...any) ([]*Role, error) {
	rows, err := conn.Query(ctx, sql, args...)
	if err != nil {
		return nil, fmt.Errorf("reading roles: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (*Role, error) {
		r := &Role{}
		err := row.Scan(&r.Name, &r.Login, &r.Superuser, &r.CreateDB, &r.CreateRole, &r.Replication,
			&r.Inherit, &r.ConnectionLimit, &r.ValidUntil, &r.verifier, &r.InRoles)
		r.HasPassword = r.verifier != ""
		return r, err
	})
	if err != nil {
		return nil, fmt.Errorf("reading roles: %w", err)
	}
	return out, nil
}

// NormalizeValidUntil turns a validity given by a person into the form Get
// reports ("infinity" or UTC RFC 3339), so that the two compare.
func NormalizeValidUntil(v string) (string, error) {
	if v == "infinity" {
		return v, nil
	}
	for _, layout := range []string{time.RFC3339, "2006-01-02T15:04:05", "2006-01-02 15:04:05", "2006-01-02 15:04", "2006-01-02"} {
		if t, err := time.Parse(layout, v); err == nil {
			return t.UTC().Format("2006-01-02T15:04:05Z"), nil
		}
	}
	return "", fmt.Errorf("valid-until %q is not a date: use infinity, 2026-12-31, \"2026-12-31 12:00\" or RFC 3339", v)
}
