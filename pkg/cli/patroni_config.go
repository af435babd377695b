package cli

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"

	"github.com/pgherd/pgherd/pkg/instance"
	"github.com/pgherd/pgherd/pkg/patroni"
	"github.com/rogpeppe/go-internal/diff"
	"github.com/spf13/cobra"
)

// clusterMember returns the instance (VERSION/NAME) of a local member of
// Patroni cluster.
func clusterMember(f *Factory, cluster string) (string, error) {
	env, err := f.InstanceEnv()
	if err != nil {
		return "", err
	}
	i, err := instance.FindPatroniMember(env, cluster)
	if err != nil {
		return "", err
	}
	return i.ID(), nil
}

// withCluster runs fn with the REST client of a local member of cluster.
func withCluster(f *Factory, cluster string, fn func(*patroni.Config, *patroni.Client) error) error {
	ref, err := clusterMember(f, cluster)
	if err != nil {
		return err
	}
	return withPatroni(f, ref, func(_ *instance.Instance, cfg *patroni.Config, c *patroni.Client) error {
		return fn(cfg, c)
	})
}

func newCmdPatroniShowConfig(f *Factory) *cobra.Command {
	var format string
	cmd := &cobra.Command{
		Use:   "show-config CLUSTER",
		Short: "Print the cluster-wide (dynamic) configuration of a Patroni cluster, as patronictl show-config",
		Args:  exactArgs(1, "one CLUSTER"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutput(format); err != nil {
				return err
			}
			return withCluster(f, args[0], func(_ *patroni.Config, c *patroni.Client) error {
				cfg, err := c.Config(cmd.Context())
				if err != nil {
					return err
				}
				if format != "" {
					return writeData(f.IO.Out, format, cfg)
				}
				b, err := patroni.ConfigYAML(cfg)
				if err != nil {
					return err
				}
				_, err = f.IO.Out.Write(b)
				return err
			})
		},
	}
	outputFlag(cmd, &format)
	return cmd
}

type editConfigOptions struct {
	yes, no bool
}

func newCmdPatroniEditConfig(f *Factory) *cobra.Command {
	o := &editConfigOptions{}
	cmd := &cobra.Command{
		Use:   "edit-config CLUSTER",
		Short: "Edit a Patroni cluster's cluster-wide configuration in $VISUAL/$EDITOR, show the diff, confirm, apply (PATCH /config)",
		Args:  exactArgs(1, "one CLUSTER"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if o.yes && o.no {
				return usageError{errors.New("--yes and --no contradict each other: choose one")}
			}
			return withCluster(f, args[0], func(cfg *patroni.Config, c *patroni.Client) error {
				return runEditConfig(cmd.Context(), f, o, cfg.Scope, c)
			})
		},
	}
	cmd.Flags().BoolVarP(&o.yes, "yes", "y", false, "apply without asking")
	cmd.Flags().BoolVar(&o.no, "no", false, "show the diff only; change nothing")
	return cmd
}

func runEditConfig(ctx context.Context, f *Factory, o *editConfigOptions, scope string, c *patroni.Client) error {
	old, err := c.Config(ctx)
	if err != nil {
		return err
	}
	before, err := patroni.ConfigYAML(old)
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp("", "pgherd-"+scope+"-config-*.yaml")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	_, err = tmp.Write(before)
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	if err := runEditor(ctx, f, tmp.Name()); err != nil {
		return fmt.Errorf("%w; the configuration of cluster %s is unchanged", err, scope)
	}
	edited, err := os.ReadFile(tmp.Name())
	if err != nil {
		return err
	}
	cfg, err := patroni.ParseConfigYAML(edited)
	if err == nil {
		err = checkEditedTimings(cfg)
	}
	if err != nil {
		return fmt.Errorf("%w; the configuration of cluster %s is unchanged", err, scope)
	}
	patch := patroni.MergePatch(old, cfg)
	if len(patch) == 0 {
		fmt.Fprintf(f.IO.Out, "no change: the configuration of cluster %s is unchanged\n", scope)
		return nil
	}
	after, err := patroni.ConfigYAML(cfg)
	if err != nil {
		return err
	}
	f.IO.Out.Write(bytes.TrimPrefix(diff.Diff("before", before, "after", after), []byte("diff before after\n")))
	switch {
	case o.no:
		fmt.Fprintf(f.IO.Out, "--no: the configuration of cluster %s is unchanged\n", scope)
		return nil
	case o.yes:
	case !f.IO.CanPrompt():
		return fmt.Errorf("refusing to change the configuration of cluster %s without confirmation: add --yes", scope)
	case !confirm(f.IO, "Apply these changes?"):
		return fmt.Errorf("cancelled: the configuration of cluster %s is unchanged", scope)
	}
	if _, err := c.PatchConfig(ctx, patch); err != nil {
		return err
	}
	fmt.Fprintf(f.IO.Out, "cluster %s: configuration changed\n", scope)
	return nil
}

// checkEditedTimings refuses edited timings that break the timing rules
// (patroni.ValidateTimings).
func checkEditedTimings(cfg map[string]any) error {
	t, err := patroni.ConfigTimings(cfg)
	if err != nil {
		return err
	}
	return patroni.ValidateTimings(t)
}
