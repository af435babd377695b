// Package connstr builds libpq connection strings: a URI naming one
// server or every member of a cluster (libpq tries them in order and
// keeps the first with the wanted target_session_attrs), and the same as
// PG* environment variables. A password appears only when one is given.
package connstr

import (
	"net"
	"net/url"
	"strconv"
	"strings"
)

// Host is one server address; Host is a name, an address or a socket
// directory.
type Host struct {
	Host string `json:"host"`
	Port int    `json:"port"`
}

// URI is a connection string's parts.
type URI struct {
	Hosts              []Host `json:"hosts"`
	User               string `json:"user,omitempty"`
	Database           string `json:"database"`
	TargetSessionAttrs string `json:"target_session_attrs,omitempty"`
	// Password, when set, is written into String's result.
	Password string `json:"-"`
}

// String is the postgresql:// URI. Socket directories go in the host
// query parameter, as libpq wants them.
func (u URI) String() string {
	var b strings.Builder
	b.WriteString("postgresql://")
	switch {
	case u.User != "" && u.Password != "":
		b.WriteString(url.UserPassword(u.User, u.Password).String() + "@")
	case u.User != "":
		b.WriteString(url.User(u.User).String() + "@")
	}
	q := url.Values{}
	var hosts, sockets, ports []string
	for _, h := range u.Hosts {
		if strings.HasPrefix(h.Host, "/") {
			sockets = append(sockets, h.Host)
			ports = append(ports, strconv.Itoa(h.Port))
			continue
		}
		hp := h.Host
		if strings.Contains(hp, ":") { // IPv6
			hp = "[" + hp + "]"
		}
		hosts = append(hosts, hp+":"+strconv.Itoa(h.Port))
	}
	b.WriteString(strings.Join(hosts, ","))
	b.WriteString("/" + url.PathEscape(u.Database))
	if len(sockets) > 0 {
		q.Set("host", strings.Join(sockets, ","))
		q.Set("port", strings.Join(ports, ","))
	}
	if u.TargetSessionAttrs != "" {
		q.Set("target_session_attrs", u.TargetSessionAttrs)
	}
	if len(q) > 0 {
		b.WriteString("?" + q.Encode())
	}
	return b.String()
}

// Env is the URI as libpq environment variables (PGHOST and PGPORT as
// comma-separated lists), NAME=value each; never PGPASSWORD.
func (u URI) Env() []string {
	var hosts, ports []string
	for _, h := range u.Hosts {
		hosts = append(hosts, h.Host)
		ports = append(ports, strconv.Itoa(h.Port))
	}
	out := []string{"PGHOST=" + strings.Join(hosts, ","), "PGPORT=" + strings.Join(ports, ",")}
	if u.User != "" {
		out = append(out, "PGUSER="+u.User)
	}
	out = append(out, "PGDATABASE="+u.Database)
	if u.TargetSessionAttrs != "" {
		out = append(out, "PGTARGETSESSIONATTRS="+u.TargetSessionAttrs)
	}
	return out
}

// ListenHost returns the host a client should use for a server with
// listen_addresses listen: its first address, this host's name for a
// wildcard, or socketDir when it listens on no TCP address.
func ListenHost(listen, socketDir, hostname string) string {
	first := strings.TrimSpace(strings.Split(listen, ",")[0])
	switch {
	case first == "":
		return socketDir
	case first == "*" || first == "0.0.0.0" || first == "::":
		return hostname
	}
	if ip := net.ParseIP(first); ip != nil {
		return ip.String()
	}
	return first
}

// PgpassLookup returns the password a pgpass file's text holds for a
// connection to port as user (any host and database), as libpq would:
// the first matching line, * matching anything.
func PgpassLookup(text string, port int, user string) (string, bool) {
	for _, line := range strings.Split(text, "\n") {
		f := splitPgpass(line)
		if len(f) != 5 || strings.HasPrefix(line, "#") {
			continue
		}
		if (f[1] == "*" || f[1] == strconv.Itoa(port)) && (f[3] == "*" || f[3] == user) {
			return f[4], true
		}
	}
	return "", false
}

// splitPgpass splits a pgpass line on unescaped colons, unescaping \: and \\.
func splitPgpass(line string) []string {
	var out []string
	var cur strings.Builder
	for i := 0; i < len(line); i++ {
		switch c := line[i]; {
		case c == '\\' && i+1 < len(line):
			i++
			cur.WriteByte(line[i])
		case c == ':' && len(out) < 4:
			out = append(out, cur.String())
			cur.Reset()
		default:
			cur.WriteByte(c)
		}
	}
	return append(out, cur.String())
}
