package hba

import (
	"fmt"
	"net"
	"strings"
)

// Probe is a connection that must keep working: pgherd's own superuser
// on the socket, Patroni's replication and rewind users from a peer.
type Probe struct {
	Local    bool   // over the socket; else over TCP from Address
	Address  net.IP // nil: from any address
	Database string // "replication" for a replication connection
	User     string
	Why      string // "pgherd's superuser connection", ...
}

// names splits a database or user field into its names; quoted ones are
// literal (never keywords).
func names(field string) (out []string, quoted []bool) {
	var cur strings.Builder
	q, inQuote := false, false
	for i := 0; i < len(field); i++ {
		c := field[i]
		switch {
		case c == '"' && inQuote && i+1 < len(field) && field[i+1] == '"':
			cur.WriteByte('"')
			i++
		case c == '"':
			inQuote, q = !inQuote, true
		case c == ',' && !inQuote:
			out, quoted = append(out, cur.String()), append(quoted, q)
			cur.Reset()
			q = false
		default:
			cur.WriteByte(c)
		}
	}
	return append(out, cur.String()), append(quoted, q)
}

// matchDatabase: a replication connection matches only the keyword
// replication; other connections match their name, all, sameuser, and
// (cautiously, as it cannot be decided here) samerole and @file.
func matchDatabase(field string, p Probe) bool {
	repl := p.Database == "replication"
	ns, qs := names(field)
	for i, n := range ns {
		switch {
		case qs[i]:
			if n == p.Database && !repl {
				return true
			}
		case n == "replication":
			if repl {
				return true
			}
		case repl:
		case n == "all", n == "sameuser" && p.Database == p.User, n == p.Database:
			return true
		case n == "samerole", n == "samegroup", strings.HasPrefix(n, "@"):
			return true
		}
	}
	return false
}

func matchUser(field string, p Probe) bool {
	ns, qs := names(field)
	for i, n := range ns {
		if n == p.User || !qs[i] && (n == "all" || strings.HasPrefix(n, "+") || strings.HasPrefix(n, "@")) {
			return true
		}
	}
	return false
}

func matchAddress(addr string, p Probe) bool {
	if p.Address == nil {
		return true
	}
	switch addr {
	case "all", "samehost", "samenet":
		return true
	}
	if a, m, ok := strings.Cut(addr, " "); ok {
		ip, mask := net.ParseIP(a), net.ParseIP(m)
		if ip == nil || mask == nil {
			return true
		}
		n := net.IPNet{IP: ip, Mask: net.IPMask(mask.To4())}
		if ip.To4() == nil {
			n.Mask = net.IPMask(mask)
		}
		return n.Contains(p.Address)
	}
	_, n, err := net.ParseCIDR(addr)
	if err != nil {
		return true // a host name: cannot be decided here
	}
	return n.Contains(p.Address)
}

// FirstMatch returns the entry PostgreSQL would use for p (its first
// match), or nil when none matches and the connection is refused. What
// cannot be decided without the server (group membership, host names,
// SSL) counts as a match.
func (f *File) FirstMatch(p Probe) *Entry {
	for _, e := range f.Entries() {
		if (e.Type == "local") != p.Local {
			continue
		}
		if matchDatabase(e.Database, p) && matchUser(e.User, p) && (p.Local || matchAddress(e.Address, p)) {
			return &e
		}
	}
	return nil
}

// CheckLockout refuses an edit after which a probe that was let in
// before would be refused (no entry, or a reject entry).
func CheckLockout(before, after *File, probes []Probe) error {
	for _, p := range probes {
		was, is := before.FirstMatch(p), after.FirstMatch(p)
		if was == nil || was.Method == "reject" {
			continue
		}
		if is == nil {
			return fmt.Errorf("refusing: after this change no pg_hba entry would let in %s (%s); it matches line %d today", p.Why, p.describe(), was.Line)
		}
		if is.Method == "reject" {
			return fmt.Errorf("refusing: after this change line %d (reject) would refuse %s (%s)", is.Line, p.Why, p.describe())
		}
	}
	return nil
}

func (p Probe) describe() string {
	where := "local socket"
	if !p.Local {
		where = "TCP"
		if p.Address != nil {
			where += " from " + p.Address.String()
		}
	}
	return fmt.Sprintf("user %s, database %s, %s", p.User, p.Database, where)
}
