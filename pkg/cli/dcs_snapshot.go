package cli

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/pgherd/pgherd/pkg/dcs"
)

func newCmdDcsSnapshot(f *Factory) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "snapshot",
		Short: "Save a DCS member's state to a file (etcd's snapshot format)",
	}
	cmd.AddCommand(newCmdDcsSnapshotSave(f))
	return cmd
}

type dcsSnapshotSaveOptions struct {
	file, name, endpoint string
	tls                  dcs.TLSConfig
	format               string
}

func newCmdDcsSnapshotSave(f *Factory) *cobra.Command {
	o := &dcsSnapshotSaveOptions{}
	cmd := &cobra.Command{
		Use:   "save FILE [NAME]",
		Short: "Save the state of member NAME set up here (or --endpoint) to FILE, as `etcdctl snapshot save` does",
		Long: "Save the state of a DCS member to FILE: an etcd 3.4 backend database followed by its SHA-256,\n" +
			"the file `etcdctl snapshot save` writes. `etcdctl snapshot status|restore` read it, and\n" +
			"`pgherd dcs restore --from FILE` builds a new cluster from it. FILE is written whole or not at\n" +
			"all, mode 0600.",
		Args: rangeOfArgs(1, 2, "FILE and at most one member NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutput(o.format); err != nil {
				return err
			}
			o.file = args[0]
			if len(args) == 2 {
				o.name = args[1]
			}
			if o.endpoint != "" && o.name != "" {
				return usageError{fmt.Errorf("give a member NAME or --endpoint, not both")}
			}
			return runDcsSnapshotSave(cmd.Context(), f, o)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&o.endpoint, "endpoint", "", "URL of a member's etcd API (default: the member set up here)")
	fl.StringVar(&o.tls.Cert, "cert", "", "PEM client certificate when the etcd API uses TLS")
	fl.StringVar(&o.tls.Key, "key", "", "its private key")
	fl.StringVar(&o.tls.CA, "ca", "", "PEM CA of the members")
	outputFlag(cmd, &o.format)
	return cmd
}

func runDcsSnapshotSave(ctx context.Context, f *Factory, o *dcsSnapshotSaveOptions) error {
	url, tlsc := o.endpoint, o.tls
	if url == "" {
		l, err := f.dcsLocal()
		if err != nil {
			return err
		}
		cfg, err := l.Pick(o.name)
		if err != nil {
			return err
		}
		url, tlsc = cfg.ClientURL(), cfg.ClientTLS
	}
	info, err := dcs.SaveSnapshot(ctx, url, tlsc, o.file)
	if err != nil {
		return err
	}
	if o.format != "" {
		return writeData(f.IO.Out, o.format, info)
	}
	fmt.Fprintf(f.IO.Out, "snapshot saved to %s (%d bytes, revision %d, sha256 %s)\n", info.Path, info.Bytes, info.Revision, info.SHA256)
	return nil
}

// rangeOfArgs is cobra.RangeArgs with a usage error and a clearer message.
func rangeOfArgs(lo, hi int, what string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) < lo || len(args) > hi {
			return usageError{fmt.Errorf("%s expects %s (got %d arguments); see %s --help", cmd.CommandPath(), what, len(args), cmd.CommandPath())}
		}
		return nil
	}
}
