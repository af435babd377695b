package instance

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/pgherd/pgherd/pkg/logging"
	"github.com/pgherd/pgherd/pkg/patroni"
	"github.com/pgherd/pgherd/pkg/pgconf"
	"github.com/pgherd/pgherd/pkg/run"
)

// Parameters of a Patroni member are never edited in postgresql.conf
// (Patroni rewrites it): the ones Patroni keeps cluster-wide go to the
// dynamic configuration (PATCH /config) and reach every member; the others
// go to this member's YAML (postgresql.parameters) followed by POST /reload.

// Paths a Patroni parameter change takes.
const (
	PathCluster = "cluster" // PATCH /config: every member
	PathLocal   = "local"   // this member's YAML, then POST /reload
)

// PatroniParamChange is one parameter change on a Patroni member.
type PatroniParamChange struct {
	Name   string  `json:"name"`
	Old    *string `json:"old"` // nil when it was not set
	New    *string `json:"new"` // nil when it is removed
	Path   string  `json:"path"`
	Effect string  `json:"effect"` // "reload" (in effect), "restart" (pending restart), "none" (dry run)
}

// PatroniParamResult is what PatroniSetParameters did.
type PatroniParamResult struct {
	Instance string               `json:"instance"`
	Changes  []PatroniParamChange `json:"changes"`
	DryRun   bool                 `json:"dry_run"`
	// Restart lists the changed parameters that wait for a restart (on
	// every member for cluster-wide ones).
	Restart []string `json:"restart"`
}

// PatroniSetParameters sets and removes parameters of a Patroni member.
// Every value is checked first by the instance's own PostgreSQL (postgres
// -C), and cluster-wide values also against what Patroni accepts (it
// ignores the others silently); a refused change writes nothing. It then
// waits, for up to two HA loops, until each change is in effect on this
// member or waits for a restart.
func PatroniSetParameters(ctx context.Context, env *Env, i *Instance, changes []pgconf.Change, dryRun bool) (*PatroniParamResult, error) {
	cfg, client, err := i.PatroniClient()
	if err != nil {
		return nil, err
	}
	dyn, err := client.Config(ctx)
	if err != nil {
		return nil, err
	}
	clusterNow := map[string]string{}
	if pg, ok := dyn["postgresql"].(map[string]any); ok {
		if ps, ok := pg["parameters"].(map[string]any); ok {
			for k, v := range ps {
				clusterNow[strings.ToLower(k)] = fmt.Sprint(v)
			}
		}
	}
	res := &PatroniParamResult{Instance: i.ID(), DryRun: dryRun, Changes: []PatroniParamChange{}, Restart: []string{}}
	cluster, local := map[string]*string{}, map[string]*string{}
	canonical := map[string]string{}
	for _, ch := range changes {
		name := strings.ToLower(ch.Name)
		if err := pgconf.CheckName(name); err != nil {
			return nil, err
		}
		if err := CheckOwned(name); err != nil {
			return nil, &pgconf.RefusedError{Msgs: []string{err.Error() + "; nothing was changed"}}
		}
		if err := checkMemberArchiving(env, i, cfg.Scope, name); err != nil {
			return nil, &pgconf.RefusedError{Msgs: []string{err.Error() + "; nothing was changed"}}
		}
		c := PatroniParamChange{Name: name, Path: PathLocal, Effect: "none"}
		now := cfg.PostgreSQL.Parameters
		if patroni.IsClusterWide(name) {
			c.Path = PathCluster
			now = clusterNow
		}
		if v, ok := now[name]; ok {
			c.Old = &v
		}
		if !ch.Remove {
			v := ch.Value
			c.New = &v
			if err := patroni.CheckClusterWide(name, v); err != nil {
				return nil, fmt.Errorf("%w: %v; nothing was changed", pgconf.ErrRefused, err)
			}
			if canonical[name], err = showValue(ctx, env.Runner, i, name, v); err != nil {
				return nil, err
			}
		}
		if (c.Old == nil) == (c.New == nil) && (c.Old == nil || *c.Old == *c.New) {
			continue // no change
		}
		if c.Path == PathCluster {
			cluster[name] = c.New
		} else {
			local[name] = c.New
		}
		res.Changes = append(res.Changes, c)
	}
	sort.Slice(res.Changes, func(a, b int) bool { return res.Changes[a].Name < res.Changes[b].Name })
	if dryRun || len(res.Changes) == 0 {
		return res, nil
	}
	log := logging.From(ctx)
	if len(cluster) > 0 {
		log.Info("changing cluster-wide parameters of Patroni cluster " + cfg.Scope + " (every member): " + strings.Join(keys(cluster), ", "))
		if err := client.SetClusterParameters(ctx, cluster); err != nil {
			return res, err
		}
	}
	if len(local) > 0 {
		log.Info("changing parameters of member " + cfg.Name + " in " + i.PatroniConfig + ": " + strings.Join(keys(local), ", "))
		if _, err := patroni.SetLocalParameters(i.PatroniConfig, local); err != nil {
			return res, err
		}
		if err := client.Reload(ctx); err != nil {
			return res, err
		}
	}
	wait := time.Duration(2*cfg.Bootstrap.DCS.LoopWait+10) * time.Second
	wctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	if err := settle(wctx, env, i, res, canonical); err != nil {
		return res, fmt.Errorf("Patroni has not applied the change after %s: %w; see 'pgherd patroni logs %s'", wait, err, i.ID())
	}
	return res, nil
}

// showValue asks the instance's PostgreSQL whether value is valid for name,
// and what pg_settings.setting will say once it is in effect ("12288" for
// work_mem = 12MB): postgres -C reads it as the server would.
func showValue(ctx context.Context, r run.Runner, i *Instance, name, value string) (string, error) {
	out, err := r.Run(ctx, run.Cmd{Args: []string{filepath.Join(i.BinDir, "postgres"), "-D", i.DataDir,
		"-c", name + "=" + value, "-c", "log_line_prefix=", "-C", name}})
	if err != nil {
		var re *run.Error
		if errors.As(err, &re) {
			msg := strings.TrimSpace(re.Stderr)
			if _, after, ok := strings.Cut(msg, "FATAL:"); ok {
				msg = strings.TrimSpace(after)
			}
			return "", fmt.Errorf("%w: PostgreSQL refuses %s = %q: %s; nothing was changed", pgconf.ErrRefused, name, value, msg)
		}
		return "", err
	}
	return strings.TrimSpace(out.Stdout), nil
}

// settle waits until each change is in effect on this member
// (pg_settings.setting holds the new value, or the parameter's source is no longer a file for a
// removal) or is pending a restart, and records which.
func settle(ctx context.Context, env *Env, i *Instance, res *PatroniParamResult, canonical map[string]string) error {
	for {
		err := settled(ctx, env, i, res, canonical)
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func settled(ctx context.Context, env *Env, i *Instance, res *PatroniParamResult, canonical map[string]string) error {
	conn, err := i.Connect(ctx, env)
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	// A parameter Patroni passes on the command line never shows
	// pending_restart in pg_settings: Patroni's own flag tells.
	_, client, err := i.PatroniClient()
	if err != nil {
		return err
	}
	st, err := client.Patroni(ctx)
	if err != nil {
		return err
	}
	res.Restart = res.Restart[:0]
	for n := range res.Changes {
		c := &res.Changes[n]
		var setting, source, context string
		var pending bool
		err := conn.QueryRow(ctx, `SELECT setting, source, context, pending_restart FROM pg_settings WHERE name = $1`, c.Name).
			Scan(&setting, &source, &context, &pending)
		switch {
		case err != nil:
			return fmt.Errorf("reading %s: %w", c.Name, err)
		case pending, context == "postmaster" && st.PendingRestart:
			c.Effect = "restart"
			res.Restart = append(res.Restart, c.Name)
		case c.New != nil && setting == canonical[c.Name], c.New == nil && source != "configuration file":
			c.Effect = "reload"
		default:
			return fmt.Errorf("%s is still %s", c.Name, setting)
		}
	}
	return nil
}

func keys(m map[string]*string) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// LeaderFirst says whether the leader must restart before the replicas: a
// hot standby needs max_connections and a few others at least as high as
// its primary's, so a lowered value must reach the primary first, a raised
// one the replicas first.
func (r *PatroniParamResult) LeaderFirst() bool {
	for _, c := range r.Changes {
		if c.Path != PathCluster || c.Old == nil || c.New == nil {
			continue
		}
		o, err1 := strconv.Atoi(*c.Old)
		n, err2 := strconv.Atoi(*c.New)
		if err1 == nil && err2 == nil && n < o {
			return true
		}
	}
	return false
}

// PatroniRestartPending restarts, through Patroni, the members res left
// waiting for a restart: this member alone for its own parameters, every
// member for cluster-wide ones (once each reports its pending restart),
// replicas first and the leader last, or the other way round when
// res.LeaderFirst(). The REST password goes only to the members whose
// configuration file is on this host; another member's restart is refused
// (patroni.ErrUnknownMember) before anything is restarted.
func PatroniRestartPending(ctx context.Context, env *Env, i *Instance, res *PatroniParamResult) error {
	cfg, client, err := i.PatroniClient()
	if err != nil {
		return err
	}
	known, err := knownMembers(env, cfg.Scope)
	if err != nil {
		return err
	}
	client.Know(known...)
	log := logging.From(ctx)
	all := false
	for _, c := range res.Changes {
		all = all || c.Path == PathCluster && c.Effect == "restart"
	}
	if !all {
		log.Info("restarting member " + cfg.Name + " through Patroni")
		_, err := client.Restart(ctx, patroni.RestartRequest{RestartPending: true})
		return err
	}
	wait := time.Duration(2*cfg.Bootstrap.DCS.LoopWait+10) * time.Second
	wctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	var cl *patroni.Cluster
	for {
		cl, err = client.Cluster(wctx)
		if err == nil && allPending(cl) {
			break
		}
		select {
		case <-wctx.Done():
			return fmt.Errorf("not every member of cluster %s reports a pending restart after %s: see 'pgherd patroni list %s'", cfg.Scope, wait, i.ID())
		case <-time.After(200 * time.Millisecond):
		}
	}
	members := append([]patroni.Member(nil), cl.Members...)
	sort.SliceStable(members, func(a, b int) bool {
		la, lb := members[a].Role == "leader", members[b].Role == "leader"
		if res.LeaderFirst() {
			return la && !lb
		}
		return !la && lb
	})
	var unknown []string
	for _, m := range members {
		if !client.Knows(m) {
			unknown = append(unknown, m.Name+" ("+m.APIURL+")")
		}
	}
	if len(unknown) > 0 {
		return fmt.Errorf("cannot restart member %s through Patroni from here: %w (pgherd sends its REST password only to members set up on this host); restart it on its own host with 'pgherd instance restart'",
			strings.Join(unknown, ", "), patroni.ErrUnknownMember)
	}
	for _, m := range members {
		log.Info("restarting member " + m.Name + " through Patroni")
		if _, err := client.ForMember(m).Restart(ctx, patroni.RestartRequest{RestartPending: true}); err != nil {
			return fmt.Errorf("restarting member %s: %w", m.Name, err)
		}
	}
	return nil
}

func allPending(cl *patroni.Cluster) bool {
	for _, m := range cl.Members {
		if !m.PendingRestart {
			return false
		}
	}
	return len(cl.Members) > 0
}

// knownMembers returns the REST API URLs of the members of Patroni cluster
// scope set up on this host, read from their configuration files.
func knownMembers(env *Env, scope string) ([]string, error) {
	all, err := List(env)
	if err != nil {
		return nil, err
	}
	var urls []string
	for _, o := range all {
		c, err := o.patroniConfig()
		if err != nil || c.Scope != scope {
			continue
		}
		if cl, err := patroni.ClientFor(c); err == nil {
			urls = append(urls, cl.URL())
		}
	}
	return urls, nil
}
