package cli

import (
	"strings"

	"github.com/pgherd/pgherd/pkg/instance"
	"github.com/pgherd/pgherd/pkg/pgconf"
	"github.com/spf13/cobra"
)

// Shell completion of names. Instance, cluster and DCS member names come
// from this host's files; member names of a cluster and parameter names ask
// the instance named earlier on the line (its REST API, its postgres
// binary). A completion that fails offers nothing.

const noFiles = cobra.ShellCompDirectiveNoFileComp

// addCompletions wires the completion of names into the command tree
// built by NewCmdRoot.
func addCompletions(f *Factory, root *cobra.Command) {
	for _, group := range root.Commands() {
		for _, c := range group.Commands() {
			path := group.Name() + " " + c.Name()
			first := strings.Fields(c.Use + " _")[1]
			switch {
			case path == "patroni show-config" || path == "patroni edit-config":
				c.ValidArgsFunction = firstArg(f.completeClusters)
			case (group.Name() == "instance" || group.Name() == "patroni") && first == "NAME" && path != "instance create":
				c.ValidArgsFunction = firstArg(func() []string { return f.completeInstances(group.Name() == "patroni") })
			case group.Name() == "dcs" && strings.Contains(c.Use, "NAME"):
				c.ValidArgsFunction = firstArg(func() []string { return f.completeDCSMembers(false) })
			case group.Name() == "witness" && c.Name() != "add" && strings.Contains(c.Use, "NAME"):
				c.ValidArgsFunction = firstArg(func() []string { return f.completeDCSMembers(true) })
			case group.Name() == "pgconf" && (c.Name() == "show" || c.Name() == "remove" || c.Name() == "set"):
				c.ValidArgsFunction = f.completeParameters(c.Name() == "set")
			}
			if c.Flags().Lookup("cluster") != nil {
				_ = c.RegisterFlagCompletionFunc("cluster", func(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
					return f.completeClusters(), noFiles
				})
			}
			if c.Flags().Lookup("candidate") != nil {
				_ = c.RegisterFlagCompletionFunc("candidate", func(cmd *cobra.Command, args []string, _ string) ([]string, cobra.ShellCompDirective) {
					return f.completeMembers(cmd, args), noFiles
				})
			}
		}
		if fl := group.PersistentFlags().Lookup("instance"); fl != nil {
			_ = group.RegisterFlagCompletionFunc("instance", func(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
				return f.completeInstances(false), noFiles
			})
		}
	}
}

// firstArg completes the first argument with names() and nothing after it.
func firstArg(names func() []string) cobra.CompletionFunc {
	return func(_ *cobra.Command, args []string, _ string) ([]string, cobra.ShellCompDirective) {
		if len(args) > 0 {
			return nil, noFiles
		}
		return names(), noFiles
	}
}

// localInstances lists this host's instances; none when that fails.
func (f *Factory) localInstances() []*instance.Instance {
	env, err := f.InstanceEnv()
	if err != nil {
		return nil
	}
	all, _ := instance.List(env)
	return all
}

// completeInstances lists this host's instances (Patroni members only when
// patroniOnly): NAME, or VERSION/NAME when two versions share the name.
func (f *Factory) completeInstances(patroniOnly bool) []string {
	all := f.localInstances()
	count := map[string]int{}
	for _, i := range all {
		count[i.Name]++
	}
	var out []string
	for _, i := range all {
		if patroniOnly && !i.PatroniManaged() {
			continue
		}
		if count[i.Name] > 1 {
			out = append(out, i.ID())
		} else {
			out = append(out, i.Name)
		}
	}
	return out
}

// completeClusters lists the Patroni clusters this host's instances belong to.
func (f *Factory) completeClusters() []string {
	all := f.localInstances()
	seen := map[string]bool{}
	var out []string
	for _, i := range all {
		if !i.PatroniManaged() {
			continue
		}
		if cfg, _, err := i.PatroniClient(); err == nil && !seen[cfg.Scope] {
			seen[cfg.Scope] = true
			out = append(out, cfg.Scope)
		}
	}
	return out
}

// completeMembers lists the members of the cluster of the instance in
// args[0], from its REST API.
func (f *Factory) completeMembers(cmd *cobra.Command, args []string) []string {
	if len(args) == 0 {
		return nil
	}
	var out []string
	_ = withInstance(f, args[0], func(_ *instance.Env, i *instance.Instance) error {
		_, c, err := i.PatroniClient()
		if err != nil {
			return err
		}
		cl, err := c.Cluster(cmd.Context())
		if err != nil {
			return err
		}
		for _, m := range cl.Members {
			out = append(out, m.Name)
		}
		return nil
	})
	return out
}

// completeDCSMembers lists the DCS members set up here (witnesses only
// when witnesses).
func (f *Factory) completeDCSMembers(witnesses bool) []string {
	l, err := f.dcsLocal()
	if err != nil {
		return nil
	}
	cfgs, err := l.Configs()
	if err != nil {
		return nil
	}
	var out []string
	for _, c := range cfgs {
		if !witnesses || c.Role == "witness" {
			out = append(out, c.Name)
		}
	}
	return out
}

// completeParameters completes parameter names of the instance given with
// -i (as NAME= for set).
func (f *Factory) completeParameters(assign bool) cobra.CompletionFunc {
	return func(cmd *cobra.Command, _ []string, _ string) ([]string, cobra.ShellCompDirective) {
		ref, _ := cmd.Flags().GetString("instance")
		if ref == "" {
			return nil, noFiles
		}
		var out []string
		_ = withInstance(f, ref, func(env *instance.Env, i *instance.Instance) error {
			names, err := pgconf.Parameters(cmd.Context(), pgconf.Target{Name: i.ID(), BinDir: i.BinDir, Runner: env.Runner})
			for _, n := range names {
				if assign {
					n += "="
				}
				out = append(out, n)
			}
			return err
		})
		directive := noFiles
		if assign {
			directive |= cobra.ShellCompDirectiveNoSpace
		}
		return out, directive
	}
}
