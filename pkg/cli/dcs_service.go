package cli

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/pgherd/pgherd/pkg/dcs"
)

// memberLifecycle runs verb (start, stop or restart) on the local DCS
// member name; role, when set, is the role the member must have.
func memberLifecycle(ctx context.Context, f *Factory, verb, name, role string) error {
	l, err := f.dcsLocal()
	if err != nil {
		return err
	}
	if role != "" {
		cfg, err := dcs.LoadConfig(l.ConfigFile(name))
		if err == nil && cfg.Role != role {
			return fmt.Errorf("%s is a %s member, not a %s: use `pgherd dcs %s %s`", name, cfg.Role, role, verb, name)
		}
	}
	noun := "member"
	if role == dcs.RoleWitness {
		noun = "witness"
	}
	if verb == "stop" || verb == "restart" {
		stopped, err := l.Stop(ctx, name)
		if err != nil {
			return err
		}
		if verb == "stop" {
			fmt.Fprintf(f.IO.Out, "%s %s %s\n", noun, name, map[bool]string{true: "stopped", false: "is already stopped"}[stopped])
			return nil
		}
	}
	started, err := l.Start(ctx, name)
	if err != nil {
		return err
	}
	if !started {
		fmt.Fprintf(f.IO.Out, "%s %s is already running\n", noun, name)
		return nil
	}
	fmt.Fprintf(f.IO.Out, "%s %s %s and follows a leader\n", noun, name, verb+"ed")
	return nil
}

func newCmdMemberLifecycle(f *Factory, verb, role, short string) *cobra.Command {
	return &cobra.Command{
		Use:   verb + " NAME",
		Short: short,
		Args:  exactArgs(1, "one member NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return memberLifecycle(cmd.Context(), f, verb, args[0], role)
		},
	}
}
