package patroni

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/pgherd/pgherd/pkg/names"
	"github.com/pgherd/pgherd/pkg/run"
)

// Timing bounds. Patroni 3.0.2 checks none of them (its validator only
// wants integers), but its HA loop on etcd3 needs them:
//
//   - loop_wait + 2*retry_timeout <= ttl ("Patroni's rule"): a leader
//     sleeps loop_wait, reads the cluster (up to retry_timeout: etcd3.py
//     waits that long for its cache) and refreshes its lease in
//     update_leader (a Retry with deadline retry_timeout); it demotes only
//     once that has failed, so its lease must outlive both. Patroni 3.3
//     enforces the same rule (config.py, _validate_and_adjust_timeouts).
//   - retry_timeout >= 3: attempt_to_acquire_leader gives up when less than
//     1 s of its retry deadline is left after refreshing the lease.
//   - loop_wait >= 1.
//   - ttl >= MinTTL: the rule alone allows 7 s (1 + 2*3); MinTTL adds a
//     3 s margin, twice the longest gap between two lease renewals of a
//     primary measured in the soak on a loaded 2-core host (1.37 s at
//     loop_wait 1; docs/ha-witness.md, "Timing profiles"). It replaces the
//     20 s floor of later Patroni documentation, which Patroni 3.0.2 does
//     not need.
//
// Patroni's watchdog needs ttl - 5 >= loop_wait (safety_margin 5); the
// rule and MinRetryTimeout imply it.
const (
	MinTTL          = 10
	MinLoopWait     = 1
	MinRetryTimeout = 3
)

// refusedConnectHosts are the hosts Patroni's validator refuses in a connect
// address (validate_connect_address in patroni/validator.py).
var refusedConnectHosts = []string{"127.0.0.1", "0.0.0.0", "*", "::1", "localhost"}

// Validate checks c before Patroni sees it, with messages that say what is
// wrong and how to fix it, one line per problem. It checks what Patroni's
// own validator checks late or not at all (timings, connect addresses,
// listen/connect agreement, TLS files, cluster-wide parameter values); it
// does not probe the network: ValidateWithPatroni does.
func (c *Config) Validate() error {
	var errs []error
	add := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }

	if err := checkNames(c, true); err != nil {
		errs = append(errs, err)
	}
	if err := ValidateTimings(Timings{c.Bootstrap.DCS.TTL, c.Bootstrap.DCS.LoopWait, c.Bootstrap.DCS.RetryTimeout}); err != nil {
		errs = append(errs, err)
	}
	errs = append(errs, checkAddresses("restapi", c.RestAPI.Listen, c.RestAPI.ConnectAddress)...)
	errs = append(errs, checkAddresses("postgresql", c.PostgreSQL.Listen, c.PostgreSQL.ConnectAddress)...)

	for name, dir := range map[string]string{"postgresql.data_dir": c.PostgreSQL.DataDir, "postgresql.bin_dir": c.PostgreSQL.BinDir} {
		if !filepath.IsAbs(dir) {
			add("%s %q is not an absolute path: give the full path", name, dir)
		}
	}
	if len(c.Etcd3.Hosts) == 0 {
		add("etcd3.hosts is empty: give the DCS endpoints as HOST:PORT")
	}
	for _, h := range c.Etcd3.Hosts {
		if _, _, err := splitHostPort(h); err != nil {
			add("etcd3.hosts: %v", err)
		}
	}
	switch c.Etcd3.Protocol {
	case "", "http", "https":
	default:
		add("etcd3.protocol %q: use http or https", c.Etcd3.Protocol)
	}
	files := map[string]string{
		"etcd3.cacert": c.Etcd3.CACert, "etcd3.cert": c.Etcd3.Cert, "etcd3.key": c.Etcd3.Key,
		"restapi.cafile": c.RestAPI.CAFile, "restapi.certfile": c.RestAPI.CertFile, "restapi.keyfile": c.RestAPI.KeyFile,
	}
	a := c.PostgreSQL.Authentication
	for role, u := range map[string]User{"superuser": a.Superuser, "replication": a.Replication, "rewind": a.Rewind} {
		p := "postgresql.authentication." + role
		if u.Username == "" || u.Password == "" {
			add("%s needs a username and a password", p)
		}
		if (u.SSLCert == "") != (u.SSLKey == "") {
			add("%s: give both an SSL certificate and its key, or neither", p)
		}
		files[p+".sslcert"], files[p+".sslkey"], files[p+".sslrootcert"] = u.SSLCert, u.SSLKey, u.SSLRootCert
	}
	for name, f := range files {
		if f == "" {
			continue
		}
		if _, err := os.Stat(f); err != nil {
			add("%s: file %s does not exist or cannot be read: give an existing file", name, f)
		}
	}
	switch c.Watchdog.Mode {
	case "off", "automatic", "required":
	default:
		add("watchdog.mode %q: use off, automatic or required", c.Watchdog.Mode)
	}
	for k, v := range c.Bootstrap.DCS.PostgreSQL.Parameters {
		if err := CheckClusterWide(k, v); err != nil && k != "wal_log_hints" {
			errs = append(errs, err)
		}
	}
	for k := range c.PostgreSQL.Parameters {
		if IsClusterWide(k) {
			add("postgresql.parameters.%s: Patroni ignores it in a member's configuration; set it cluster-wide in bootstrap.dcs.postgresql.parameters", k)
		}
	}
	if len(c.Bootstrap.PgHBA) == 0 {
		add("bootstrap.pg_hba is empty: Patroni's validator requires it")
	}
	return sortedJoin(errs)
}

// ValidateTimings checks the timing bounds (see MinTTL) and says, in one
// line, which ones fail and how to fix them.
func ValidateTimings(t Timings) error {
	var errs []string
	if t.TTL < MinTTL {
		errs = append(errs, fmt.Sprintf("ttl %d is below pgherd's minimum of %d seconds (Patroni's rule loop_wait + 2*retry_timeout <= ttl plus a measured margin): set ttl to %d or more", t.TTL, MinTTL, MinTTL))
	}
	if t.LoopWait < MinLoopWait {
		errs = append(errs, fmt.Sprintf("loop_wait %d is below pgherd's minimum of %d second: set loop_wait to %d or more", t.LoopWait, MinLoopWait, MinLoopWait))
	}
	if t.RetryTimeout < MinRetryTimeout {
		errs = append(errs, fmt.Sprintf("retry_timeout %d is below pgherd's minimum of %d seconds (Patroni needs 1 s left after a lease refresh): set retry_timeout to %d or more", t.RetryTimeout, MinRetryTimeout, MinRetryTimeout))
	}
	if need := t.LoopWait + 2*t.RetryTimeout; need > t.TTL {
		errs = append(errs, fmt.Sprintf("loop_wait + 2*retry_timeout = %d + 2*%d = %d exceeds ttl %d, breaking Patroni's rule loop_wait + 2*retry_timeout <= ttl (a leader could lose its lock before it retries): raise ttl to %d or lower loop_wait or retry_timeout",
			t.LoopWait, t.RetryTimeout, need, t.TTL, need))
	}
	if len(errs) == 0 {
		return nil
	}
	return errors.New(strings.Join(errs, "; "))
}

// checkAddresses checks a section's connect address and that its listen
// address serves the connect address's host and port.
func checkAddresses(section, listen, connect string) []error {
	var errs []error
	ch, cp, err := splitHostPort(connect)
	if err != nil {
		return []error{fmt.Errorf("%s.connect_address: %w", section, err)}
	}
	for _, r := range refusedConnectHosts {
		if strings.EqualFold(ch, r) {
			errs = append(errs, fmt.Errorf("%s.connect_address %s: Patroni's validator refuses %s in a connect address (other members must reach this one there): use this host's address, or another loopback address such as 127.0.1.1", section, connect, ch))
		}
	}
	i := strings.LastIndex(listen, ":")
	if i < 0 {
		return append(errs, fmt.Errorf("%s.listen %q is not HOST:PORT: listen on %s", section, listen, connect))
	}
	if lp := listen[i+1:]; lp != strconv.Itoa(cp) {
		errs = append(errs, fmt.Errorf("%s.listen %s and %s.connect_address %s have different ports: use port %d in both", section, listen, section, connect, cp))
	}
	served := false
	for _, h := range strings.Split(listen[:i], ",") {
		h = strings.Trim(strings.TrimSpace(h), "[]")
		if h == ch || h == "*" || h == "0.0.0.0" || h == "::" {
			served = true
		}
	}
	if !served {
		errs = append(errs, fmt.Errorf("%s.listen %s does not listen on the connect address's host %s: listen on %s", section, listen, ch, ch))
	}
	return errs
}

func splitHostPort(hp string) (string, int, error) {
	h, p, err := net.SplitHostPort(hp)
	if err != nil {
		return "", 0, fmt.Errorf("%q is not HOST:PORT", hp)
	}
	port, err := strconv.Atoi(p)
	if err != nil || port < 1 || port > 65535 || h == "" {
		return "", 0, fmt.Errorf("%q is not HOST:PORT with a port from 1 to 65535", hp)
	}
	return h, port, nil
}

// sortedJoin joins errs in a stable order (map iteration is random).
func sortedJoin(errs []error) error {
	msgs := make([]string, 0, len(errs))
	for _, e := range errs {
		msgs = append(msgs, e.Error())
	}
	if len(msgs) == 0 {
		return nil
	}
	sort.Strings(msgs)
	return errors.New(strings.Join(msgs, "\n"))
}

// ValidatorError is Patroni's validator refusing a file: Output is what it
// printed, verbatim (passwords masked).
type ValidatorError struct {
	File   string
	Output string
}

func (e *ValidatorError) Error() string {
	return "patroni --validate-config refused " + e.File + ":\n" + strings.TrimRight(e.Output, "\n")
}

// ValidateWithPatroni runs `patroni --validate-config path` through r with
// Patroni's clean environment. path must hold c as written by WriteFile.
// Patroni's validator probes the machine: every listen port must be free
// (never run it on a running member's file), the etcd hosts must answer and
// bin_dir must hold PostgreSQL's programs. On refusal it returns a
// *ValidatorError with Patroni's message.
func (c *Config) ValidateWithPatroni(ctx context.Context, r run.Runner, exe, path string) error {
	res, err := r.Run(ctx, run.Cmd{
		Args:   []string{exe, "--validate-config", path},
		Env:    Environ(""),
		Redact: c.secrets(),
	})
	if err == nil {
		return nil
	}
	var rerr *run.Error
	if !errors.As(err, &rerr) {
		return fmt.Errorf("cannot run Patroni's validator: %w", err)
	}
	out := res.Stderr
	if strings.TrimSpace(out) == "" {
		out = res.Stdout
	}
	for _, s := range c.secrets() {
		if s != "" {
			out = strings.ReplaceAll(out, s, masked)
		}
	}
	return &ValidatorError{File: path, Output: out}
}

// ValidateBeforeDCS runs Patroni's validator on c before its DCS can be
// reached: a member about to join pgherd's embedded DCS has no endpoint
// yet, so the DCS is given to the validator as a URL, which it does not
// probe (CheckDCSReachable and ReadDCSState do that part). Everything else
// is probed as for ValidateWithPatroni: listen ports, bin_dir, data_dir.
// The file is written, readable by owner only, in a private temporary
// directory that is removed afterwards; messages name the file c is
// meant for, path.
func (c *Config) ValidateBeforeDCS(ctx context.Context, r run.Runner, exe, path string, owner *Owner) error {
	v := *c
	v.Etcd3.URL, v.Etcd3.Hosts = "", nil
	if len(c.Etcd3.Hosts) > 0 {
		proto := c.Etcd3.Protocol
		if proto == "" {
			proto = "http"
		}
		v.Etcd3.URL = proto + "://" + c.Etcd3.Hosts[0]
	}
	dir, err := os.MkdirTemp("", "pgherd-patroni-")
	if err != nil {
		return fmt.Errorf("cannot write a configuration for Patroni's validator: %w", err)
	}
	defer os.RemoveAll(dir)
	// Root keeps the directory; the validator, run as owner, only
	// traverses it to read its own file.
	if err := os.Chmod(dir, 0o711); err != nil {
		return err
	}
	tmp := filepath.Join(dir, filepath.Base(path))
	if err := v.WriteFile(tmp, owner); err != nil {
		return fmt.Errorf("cannot write a configuration for Patroni's validator: %w", err)
	}
	err = v.ValidateWithPatroni(ctx, r, exe, tmp)
	var verr *ValidatorError
	if errors.As(err, &verr) {
		verr.File = path
		verr.Output = strings.ReplaceAll(verr.Output, tmp, path)
	}
	return err
}

// checkNames checks scope and name against the one rule for names
// (pkg/names): pgherd builds file names from them (the credentials file,
// the DCS member). With required, an empty one is an
// error too. ReadFile checks them (empty allowed: other checks name what
// is missing): the YAML sits in a directory Patroni's account can write,
// and root must not build a path it deletes from whatever that account
// wrote there.
func checkNames(c *Config, required bool) error {
	for _, n := range []struct{ key, what, v string }{{"scope", "cluster", c.Scope}, {"name", "member", c.Name}} {
		switch {
		case n.v == "" && required:
			return fmt.Errorf("%s (the %s name) is empty: give a %s name", n.key, n.what, n.what)
		case n.v != "":
			if err := names.Check(n.what, n.v); err != nil {
				return fmt.Errorf("%s: %w", n.key, err)
			}
		}
	}
	return nil
}
