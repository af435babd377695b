package hba

import (
	"fmt"
	"net"
	"slices"
	"strings"
)

// keywords have a meaning in the database or user field; a name that is
// one is quoted to mean the name.
var keywords = []string{"all", "sameuser", "samerole", "samegroup", "replication"}

// QuoteNames makes a database or user field from names: a keyword stays
// a keyword when given alone as such (keep), anything else that needs it
// is double-quoted.
func QuoteNames(names []string) string {
	out := make([]string, len(names))
	for i, n := range names {
		if slices.Contains(keywords, n) || (strings.HasPrefix(n, "+") && !strings.ContainsAny(n[1:], " \t,\"#")) {
			out[i] = n
			continue
		}
		if n == "" || strings.ContainsAny(n, " \t,\"#@+") || strings.ToLower(n) != n {
			out[i] = `"` + strings.ReplaceAll(n, `"`, `""`) + `"`
			continue
		}
		out[i] = n
	}
	return strings.Join(out, ",")
}

// Check refuses an entry PostgreSQL would reject or that pgherd cannot
// vouch for: an unknown type or method, an address that is not a CIDR
// (or all, samehost, samenet), an address on a local entry.
func Check(e Entry) error {
	if !slices.Contains(Types, e.Type) {
		return fmt.Errorf("--type %q: use %s", e.Type, strings.Join(Types, ", "))
	}
	if !slices.Contains(Methods, e.Method) {
		return fmt.Errorf("--method %q is not a pg_hba method: use %s", e.Method, strings.Join(Methods, ", "))
	}
	if e.Database == "" || e.User == "" {
		return fmt.Errorf("an entry needs --database and --user (all for any)")
	}
	if e.Type == "local" {
		if e.Address != "" {
			return fmt.Errorf("a local entry has no address: drop --address, or use --type host")
		}
		return nil
	}
	switch e.Address {
	case "":
		return fmt.Errorf("a %s entry needs --address CIDR (e.g. 10.0.0.0/24), all, samehost or samenet", e.Type)
	case "all", "samehost", "samenet":
		return nil
	}
	ip, ipnet, err := net.ParseCIDR(e.Address)
	if err != nil {
		if net.ParseIP(e.Address) != nil {
			return fmt.Errorf("--address %q has no prefix length: write %s/32 (or /128 for IPv6)", e.Address, e.Address)
		}
		return fmt.Errorf("--address %q is not a CIDR network (e.g. 10.0.0.0/24), all, samehost or samenet", e.Address)
	}
	if !ip.Equal(ipnet.IP) {
		return fmt.Errorf("--address %s has host bits set: the network is %s", e.Address, ipnet)
	}
	return nil
}
