package cli

import (
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/pgherd/pgherd/pkg/manifest"
	"github.com/spf13/cobra"
)

type applyOptions struct {
	instance string
	file     string
	format   string
	dryRun   bool
}

func newCmdApply(f *Factory) *cobra.Command {
	opts := &applyOptions{}
	cmd := &cobra.Command{
		Use:   "apply -i INSTANCE -f FILE",
		Short: "Converge an instance's roles, databases and pg_hba entries to a YAML manifest (see docs/objects.md)",
		Args:  exactArgs(0, "no arguments, only flags"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkOutput(opts.format); err != nil {
				return err
			}
			if opts.file == "" {
				return usageError{errors.New("apply needs a manifest: add -f FILE")}
			}
			m, err := manifest.Load(opts.file)
			if err != nil {
				return usageError{err}
			}
			ctx := cmd.Context()
			return withObjectsConn(ctx, f, opts.instance, func(t *objectsTarget, conn *pgx.Conn) error {
				var err error
				mt := manifest.Target{Conn: conn, Connect: t.connect, Protected: t.protected, ReadSecret: readSecretFile}
				if mt.HBA, err = anyHbaTarget(ctx, t.env, t.inst); err != nil {
					return err
				}
				changes, err := manifest.Apply(ctx, mt, m, opts.dryRun)
				if err != nil {
					return err
				}
				if opts.format != "" {
					return writeData(f.IO.Out, opts.format, struct {
						Changes []manifest.Change `json:"changes"`
						DryRun  bool              `json:"dry_run"`
					}{changes, opts.dryRun})
				}
				for _, c := range changes {
					fmt.Fprintln(f.IO.Out, c.Change)
				}
				switch {
				case len(changes) == 0:
					fmt.Fprintln(f.IO.Out, "nothing to change")
				case opts.dryRun:
					fmt.Fprintln(f.IO.Out, "dry run: nothing was changed")
				}
				return nil
			})
		},
	}
	fl := cmd.Flags()
	fl.StringVarP(&opts.instance, "instance", "i", "", "instance (VERSION/NAME, or NAME when unique); any member of a Patroni cluster")
	fl.StringVarP(&opts.file, "file", "f", "", "the manifest (YAML)")
	fl.BoolVar(&opts.dryRun, "dry-run", false, "print what would change; change nothing")
	outputFlag(cmd, &opts.format)
	return cmd
}
