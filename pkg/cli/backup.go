package cli

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/pgherd/pgherd/pkg/backup"
	"github.com/pgherd/pgherd/pkg/instance"
	"github.com/spf13/cobra"
)

// newCmdsInstanceBackup returns instance backup, backups and restore.
func newCmdsInstanceBackup(f *Factory) []*cobra.Command {
	return []*cobra.Command{newCmdInstanceBackup(f), newCmdInstanceBackups(f), newCmdInstanceRestore(f)}
}

type backupOptions struct {
	ref, typ    string
	fromStandby bool
}

func newCmdInstanceBackup(f *Factory) *cobra.Command {
	opts := &backupOptions{}
	cmd := &cobra.Command{
		Use:   "backup NAME",
		Short: "Back up a running instance with pgBackRest",
		Long: "Back up a running instance with pgBackRest into its stanza (site.yaml pgbackrest:).\n" +
			"Without --type, pgBackRest takes an incremental backup, or a full one when there is none.\n" +
			"Given any member of a Patroni cluster, it backs up the cluster (stanza named after the cluster) from its\n" +
			"primary, which must run on this host; with --backup-standby the files are copied from a standby member.",
		Args: exactArgs(1, "one instance NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.ref = args[0]
			if opts.typ != "" && !slices.Contains(backup.Types, opts.typ) {
				return usageError{fmt.Errorf("--type %q: use full, diff or incr", opts.typ)}
			}
			return runInstanceBackup(cmd.Context(), f, opts)
		},
	}
	cmd.Flags().StringVar(&opts.typ, "type", "", "full, diff or incr (default: incr, or full when there is no backup)")
	cmd.Flags().BoolVar(&opts.fromStandby, "backup-standby", false, "of a Patroni member: copy the files from a standby member rather than the primary")
	return cmd
}

func runInstanceBackup(ctx context.Context, f *Factory, opts *backupOptions) error {
	return withInstance(f, opts.ref, func(env *instance.Env, i *instance.Instance) error {
		bi, err := instance.BackupTarget(env, i)
		if err != nil {
			return err
		}
		res, err := instance.BackupEnv(env).Backup(ctx, bi, opts.typ, opts.fromStandby)
		if err != nil {
			return err
		}
		switch {
		case bi.Cluster == "":
			fmt.Fprintf(f.IO.Out, "backup %s (%s) of %s done\n", res.Label, res.Type, i.ID())
		case opts.fromStandby:
			fmt.Fprintf(f.IO.Out, "backup %s (%s) of Patroni cluster %s done: started on primary %s, files copied from a standby\n", res.Label, res.Type, bi.Cluster, res.Primary)
		default:
			fmt.Fprintf(f.IO.Out, "backup %s (%s) of Patroni cluster %s done from primary %s\n", res.Label, res.Type, bi.Cluster, res.Primary)
		}
		return nil
	})
}

func newCmdInstanceBackups(f *Factory) *cobra.Command {
	var format string
	cmd := &cobra.Command{
		Use:   "backups NAME",
		Short: "List an instance's pgBackRest backups, oldest first",
		Args:  exactArgs(1, "one instance NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutput(format); err != nil {
				return err
			}
			return withInstance(f, args[0], func(env *instance.Env, i *instance.Instance) error {
				bi, err := instance.BackupTarget(env, i)
				if err != nil {
					return err
				}
				list, err := instance.BackupEnv(env).Backups(cmd.Context(), bi)
				if err != nil {
					return err
				}
				if format != "" {
					return writeData(f.IO.Out, format, list)
				}
				rows := make([][]string, 0, len(list))
				for _, b := range list {
					rows = append(rows, []string{b.Label, b.Type, b.Start.Local().Format(time.DateTime), b.Stop.Local().Format(time.DateTime),
						backup.HumanSize(b.Size), backup.HumanSize(b.RepoDelta), b.WALStart + "-" + b.WALStop})
				}
				return writeTable(f.IO, []string{"label", "type", "start", "stop", "size", "added to repository", "WAL"}, rows)
			})
		},
	}
	outputFlag(cmd, &format)
	return cmd
}

type restoreOptions struct {
	ref    string
	target backup.Target
	date   string
	yes    bool
}

func newCmdInstanceRestore(f *Factory) *cobra.Command {
	opts := &restoreOptions{}
	cmd := &cobra.Command{
		Use:   "restore NAME (--label L | --date TIMESTAMP | --latest)",
		Short: "Restore an instance from a pgBackRest backup, to a backup, a point in time or the end of the archive",
		Long: "Restore an instance from its pgBackRest stanza. The instance is stopped, the backup restored into a new\n" +
			"directory that replaces the data directory once PostgreSQL has recovered to the target and promoted; on any\n" +
			"failure the previous data directory stays (or is put back) and the instance is started again if it ran.\n" +
			"Given a Patroni member, it restores the whole cluster: every member on this host is stopped, the cluster's\n" +
			"keys are removed from the DCS (its configuration stays), the member is restored and recovered, then leads\n" +
			"the cluster; a full backup of the new timeline is taken and the other members are re-created from it.",
		Args: exactArgs(1, "one instance NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.ref = args[0]
			n := 0
			for _, set := range []bool{opts.target.Label != "", opts.date != "", opts.target.Latest} {
				if set {
					n++
				}
			}
			if n != 1 {
				return usageError{fmt.Errorf("give exactly one of --label, --date or --latest")}
			}
			if opts.date != "" {
				t, err := parseTimestamp(opts.date)
				if err != nil {
					return usageError{err}
				}
				opts.target.Time = t
			}
			return runInstanceRestore(cmd.Context(), f, opts)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&opts.target.Label, "label", "", "restore this backup, recovered to its end")
	fl.StringVar(&opts.date, "date", "", "recover to this time (YYYY-MM-DD HH:MM:SS[.ffffff][±HH[:MM]], RFC 3339; local time without offset)")
	fl.BoolVar(&opts.target.Latest, "latest", false, "restore the latest backup and replay all archived WAL")
	fl.BoolVarP(&opts.yes, "yes", "y", false, "stop a running instance (a Patroni member: its whole cluster) without asking")
	return cmd
}

func runInstanceRestore(ctx context.Context, f *Factory, opts *restoreOptions) error {
	return withInstance(f, opts.ref, func(env *instance.Env, i *instance.Instance) error {
		bi, err := instance.BackupTarget(env, i)
		if err != nil {
			return err
		}
		if bi.Cluster != "" {
			return runClusterRestore(ctx, f, opts, env, i)
		}
		if i.State() == instance.Started && !opts.yes {
			if !f.IO.CanPrompt() {
				return fmt.Errorf("instance %s is running: restore stops it and replaces its data; add --yes", i.ID())
			}
			if !confirm(f.IO, fmt.Sprintf("Stop %s and replace its data with the restored backup?", i.ID())) {
				return fmt.Errorf("not restored: %s is unchanged", i.ID())
			}
		}
		res, err := instance.Restore(ctx, env, i, opts.target)
		if err != nil {
			return err
		}
		fmt.Fprintf(f.IO.Out, "instance %s restored from backup %s, recovered to %s\n", i.ID(), res.Backup.Label, res.Recovery)
		return nil
	})
}

// runClusterRestore restores the Patroni cluster of member i, which
// always needs --yes or a question answered: every member's data is
// replaced, running or not.
func runClusterRestore(ctx context.Context, f *Factory, opts *restoreOptions, env *instance.Env, i *instance.Instance) error {
	scope, members, err := instance.ClusterMembersHere(env, i)
	if err != nil {
		return err
	}
	var others []string
	for _, m := range members {
		if m.ID() != i.ID() {
			others = append(others, m.Name)
		}
	}
	what := fmt.Sprintf("restores its whole Patroni cluster %s: every member on this host (%s) is stopped, the cluster's keys are removed from the DCS, %s is restored and becomes the leader", scope, strings.Join(instance.Names(members), ", "), i.Name)
	if len(others) > 0 {
		what += fmt.Sprintf(", and %s re-created from a new full backup", strings.Join(others, ", "))
	}
	if !opts.yes {
		if !f.IO.CanPrompt() {
			return fmt.Errorf("restore of member %s %s; add --yes", i.Name, what)
		}
		if !confirm(f.IO, fmt.Sprintf("Restore of member %s %s. Continue?", i.Name, what)) {
			return fmt.Errorf("not restored: Patroni cluster %s is unchanged", scope)
		}
	}
	res, err := instance.RestoreCluster(ctx, env, i, opts.target)
	if err != nil {
		return err
	}
	out := f.IO.Out
	fmt.Fprintf(out, "Patroni cluster %s restored from backup %s, recovered to %s\n", res.Cluster, res.Backup.Label, res.Recovery)
	if len(res.Stopped) > 0 {
		fmt.Fprintf(out, "  stopped: %s\n", strings.Join(res.Stopped, ", "))
	}
	fmt.Fprintf(out, "  leader: %s (timeline %d), accepting writes\n", res.Leader, res.Timeline)
	if res.NewBackup != "" {
		fmt.Fprintf(out, "  full backup of the new timeline: %s\n", res.NewBackup)
	}
	for _, m := range res.Rebuilt {
		fmt.Fprintf(out, "  re-created from it: %s\n", m)
	}
	return nil
}

var timestampLayouts = []string{time.RFC3339Nano, "2006-01-02 15:04:05.999999999Z07:00", "2006-01-02 15:04:05.999999999Z07", "2006-01-02 15:04:05.999999999"}

// parseTimestamp reads --date; without an offset the time is local.
func parseTimestamp(s string) (time.Time, error) {
	s = strings.TrimSpace(s)
	for _, l := range timestampLayouts {
		if t, err := time.ParseInLocation(l, s, time.Local); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("--date %q is not a timestamp: use YYYY-MM-DD HH:MM:SS[.ffffff][±HH:MM], e.g. '2024-05-01 13:45:00+02:00'", s)
}
