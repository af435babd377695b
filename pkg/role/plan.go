package role

import (
	"crypto/hmac"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// Step is one statement of a plan and what it changes, in words that never
// hold a password.
type Step struct {
	Desc string `json:"change"`
	SQL  string `json:"-"`
	// Membership marks a GRANT or REVOKE of a role, which must come
	// after the roles it names exist.
	Membership bool `json:"-"`
}

// Plan returns the statements that make current (nil: the role is missing)
// what s says, in order; none when it already is. It checks s first.
func Plan(current *Role, s Spec) ([]Step, error) {
	if err := CheckName("role", s.Name); err != nil {
		return nil, err
	}
	valid := ""
	if s.ValidUntil != "" {
		v, err := NormalizeValidUntil(s.ValidUntil)
		if err != nil {
			return nil, err
		}
		valid = v
	}
	if s.ConnectionLimit != nil && *s.ConnectionLimit < -1 {
		return nil, fmt.Errorf("connection limit %d: use -1 (no limit) or a count", *s.ConnectionLimit)
	}
	for _, m := range slices.Concat(deref(s.InRoles), s.GrantRoles, s.RevokeRoles) {
		if err := CheckName("role", m); err != nil {
			return nil, err
		}
		if m == s.Name {
			return nil, fmt.Errorf("role %q cannot be a member of itself", s.Name)
		}
	}
	name := Ident(s.Name)
	var opts, what []string
	flag := func(want *bool, have bool, on, off, word string) {
		if want != nil && (current == nil || *want != have) {
			if *want {
				opts, what = append(opts, on), append(what, word)
			} else {
				opts, what = append(opts, off), append(what, "no "+word)
			}
		}
	}
	r := current
	if r == nil {
		r = &Role{ConnectionLimit: -1}
	}
	flag(s.Login, r.Login, "LOGIN", "NOLOGIN", "login")
	flag(s.Superuser, r.Superuser, "SUPERUSER", "NOSUPERUSER", "superuser")
	flag(s.CreateDB, r.CreateDB, "CREATEDB", "NOCREATEDB", "createdb")
	flag(s.CreateRole, r.CreateRole, "CREATEROLE", "NOCREATEROLE", "createrole")
	flag(s.Replication, r.Replication, "REPLICATION", "NOREPLICATION", "replication")
	flag(s.Inherit, r.Inherit, "INHERIT", "NOINHERIT", "inherit")
	if s.ConnectionLimit != nil && (current == nil || *s.ConnectionLimit != r.ConnectionLimit) {
		opts = append(opts, "CONNECTION LIMIT "+strconv.Itoa(*s.ConnectionLimit))
		what = append(what, "connection limit "+strconv.Itoa(*s.ConnectionLimit))
	}
	if valid != "" && (r.ValidUntil == nil || *r.ValidUntil != valid) {
		opts = append(opts, "VALID UNTIL "+Literal(valid))
		what = append(what, "valid until "+valid)
	}
	if s.Password != nil && (current == nil || !VerifierMatches(r.verifier, s.Password.value)) {
		v, err := Verifier(s.Password.value)
		if err != nil {
			return nil, err
		}
		opts = append(opts, "PASSWORD "+Literal(v))
		what = append(what, "password")
	}
	var steps []Step
	switch {
	case current == nil:
		desc := "create role " + s.Name
		if len(what) > 0 {
			desc += " (" + strings.Join(what, ", ") + ")"
		}
		sql := "CREATE ROLE " + name
		if len(opts) > 0 {
			sql += " WITH " + strings.Join(opts, " ")
		}
		steps = append(steps, Step{Desc: desc, SQL: sql})
	case len(opts) > 0:
		steps = append(steps, Step{Desc: "alter role " + s.Name + ": " + strings.Join(what, ", "), SQL: "ALTER ROLE " + name + " WITH " + strings.Join(opts, " ")})
	}
	grant, revoke := slices.Clone(s.GrantRoles), slices.Clone(s.RevokeRoles)
	if s.InRoles != nil {
		for _, m := range *s.InRoles {
			grant = append(grant, m)
		}
		for _, m := range r.InRoles {
			if !slices.Contains(*s.InRoles, m) {
				revoke = append(revoke, m)
			}
		}
	}
	done := map[string]bool{}
	for _, m := range grant {
		if !done[m] && !slices.Contains(r.InRoles, m) {
			done[m] = true
			steps = append(steps, Step{Desc: "grant role " + m + " to " + s.Name, SQL: "GRANT " + Ident(m) + " TO " + name, Membership: true})
		}
	}
	for _, m := range revoke {
		if !done[m] && slices.Contains(r.InRoles, m) {
			done[m] = true
			steps = append(steps, Step{Desc: "revoke role " + m + " from " + s.Name, SQL: "REVOKE " + Ident(m) + " FROM " + name, Membership: true})
		}
	}
	return steps, nil
}

func deref(p *[]string) []string {
	if p == nil {
		return nil
	}
	return *p
}

const scramIterations = 4096

// Verifier returns the SCRAM-SHA-256 verifier PostgreSQL stores for
// password (RFC 5803 form, as libpq's PQencryptPasswordConn makes it), so
// that the password itself never travels in a statement.
func Verifier(password string) (string, error) {
	salt := make([]byte, 16)
	if _, err := rand.Read(salt); err != nil {
		return "", err
	}
	return verifier(password, salt, scramIterations)
}

func verifier(password string, salt []byte, iter int) (string, error) {
	salted, err := pbkdf2.Key(sha256.New, password, salt, iter, sha256.Size)
	if err != nil {
		return "", err
	}
	clientKey := mac(salted, "Client Key")
	stored := sha256.Sum256(clientKey)
	serverKey := mac(salted, "Server Key")
	b64 := base64.StdEncoding.EncodeToString
	return fmt.Sprintf("SCRAM-SHA-256$%d:%s$%s:%s", iter, b64(salt), b64(stored[:]), b64(serverKey)), nil
}

func mac(key []byte, msg string) []byte {
	h := hmac.New(sha256.New, key)
	h.Write([]byte(msg))
	return h.Sum(nil)
}

// VerifierMatches reports whether stored (a rolpassword) is a SCRAM
// verifier of password. Any other form (md5, none) does not match, so a
// plan sets the password again as SCRAM.
func VerifierMatches(stored, password string) bool {
	rest, ok := strings.CutPrefix(stored, "SCRAM-SHA-256$")
	if !ok {
		return false
	}
	iterSalt, _, ok := strings.Cut(rest, "$")
	if !ok {
		return false
	}
	iterS, saltS, ok := strings.Cut(iterSalt, ":")
	if !ok {
		return false
	}
	iter, err := strconv.Atoi(iterS)
	if err != nil || iter < 1 || iter > 1<<20 {
		return false
	}
	salt, err := base64.StdEncoding.DecodeString(saltS)
	if err != nil {
		return false
	}
	v, err := verifier(password, salt, iter)
	return err == nil && hmac.Equal([]byte(v), []byte(stored))
}
