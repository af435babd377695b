package cli

import (
	"context"
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/pgherd/pgherd/pkg/dcs"
)

type dcsRecoverOptions struct {
	name string
	dead []string
	yes  bool
}

func newCmdDcsRecover(f *Factory) *cobra.Command {
	o := &dcsRecoverOptions{}
	cmd := &cobra.Command{
		Use:   "recover NAME --dead OTHER,... [--yes]",
		Short: "Restart member NAME set up here as a one-member cluster when the other members are gone for good",
		Long: "When a quorum is lost for good (the other members' hosts destroyed), restart the surviving member\n" +
			"NAME alone, with its data, under a new cluster ID. Refused while a quorum of the old configuration\n" +
			"answers, while a member not named in --dead answers, or when NAME is not running. Without --yes,\n" +
			"only reports what the survivor knows. The dead members can never again vote with it or be taken\n" +
			"for members: wipe them (`pgherd dcs leave NAME`/their data directories) and join them again.",
		Args: exactArgs(1, "one member NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(o.dead) == 0 {
				return usageError{fmt.Errorf("--dead is required: the members gone for good, comma-separated")}
			}
			o.name = args[0]
			return runDcsRecover(cmd.Context(), f, o)
		},
	}
	cmd.Flags().StringSliceVar(&o.dead, "dead", nil, "the other members, gone for good (comma-separated; required)")
	cmd.Flags().BoolVar(&o.yes, "yes", false, "recover: restart NAME alone under a new cluster ID")
	return cmd
}

func runDcsRecover(ctx context.Context, f *Factory, o *dcsRecoverOptions) error {
	l, err := f.dcsLocal()
	if err != nil {
		return err
	}
	rep, err := l.PlanRecovery(ctx, o.name, o.dead)
	if err != nil {
		return err
	}
	if o.yes {
		mi, err := l.Recover(ctx, o.name)
		if err != nil {
			return err
		}
		rep.ClusterID = mi.ClusterID
	}
	writeRecoveryReport(f, rep)
	if !o.yes {
		return fmt.Errorf("nothing changed: run again with --yes to restart %s alone under a new cluster ID", o.name)
	}
	return nil
}

func writeRecoveryReport(f *Factory, rep dcs.RecoveryReport) {
	s := rep.Survivor
	heard := "never heard from a leader"
	if s.LastContactS != nil {
		heard = fmt.Sprintf("last heard from a leader %.1f s ago", *s.LastContactS)
	}
	fmt.Fprintf(f.IO.Out, "survivor %s: applied index %d, commit index %d, term %d; %s\n", s.Name, s.AppliedIndex, s.CommitIndex, s.Term, heard)
	for _, m := range rep.Members {
		if m.Name == s.Name {
			continue
		}
		fmt.Fprintf(f.IO.Out, "member %s (%s, %s): does not answer at %s; when %s last heard from it is not known (a follower hears only from the leader)\n",
			m.Name, m.Role, m.Suffrage, m.PeerURL, s.Name)
	}
	fmt.Fprintf(f.IO.Out, "entries the dead members held beyond index %d, if any, are lost\n", s.AppliedIndex)
	if rep.ClusterID != "" {
		fmt.Fprintf(f.IO.Out, "member %s leads the new cluster %s alone; wipe the dead members (%s) and set them up again with `pgherd dcs join` or `pgherd witness add`\n",
			s.Name, rep.ClusterID, strings.Join(rep.Dead, ","))
	}
}
