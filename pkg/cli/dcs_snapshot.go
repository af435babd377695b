package cli

import (
	"cmp"
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
	fmt.Fprintf(f.IO.Out, "snapshot saved to %s (%d bytes, revision %d, sha256 %s)\n", info.Path, info.Bytes, info.Revision, info.SHA256)
	return nil
}

type dcsRestoreOptions struct {
	cfg  dcs.Config
	from string
}

func newCmdDcsRestore(f *Factory) *cobra.Command {
	o := &dcsRestoreOptions{}
	cmd := &cobra.Command{
		Use:   "restore --from FILE --name NAME --listen-peer HOST:PORT --listen-client HOST:PORT",
		Short: "Start a NEW one-member DCS cluster here from a snapshot file; the other members join it again",
		Long: "Set up member NAME here as the only member of a new DCS cluster whose state is the snapshot FILE\n" +
			"(from `pgherd dcs snapshot save` or `etcdctl snapshot save`): the same keys at the same revisions,\n" +
			"leases included, under a new cluster ID. Members of the old cluster cannot join it as they are:\n" +
			"set each one up again with `pgherd dcs join`. A truncated snapshot, or a file that is not one, is\n" +
			"refused before anything is created.",
		Args: exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if o.from == "" || o.cfg.Name == "" || o.cfg.ListenPeer == "" || o.cfg.ListenClient == "" {
				return usageError{fmt.Errorf("--from, --name, --listen-peer and --listen-client are required")}
			}
			if err := checkFixedPorts(o.cfg.ListenPeer, o.cfg.ListenClient); err != nil {
				return err
			}
			o.cfg.ClientTLS = o.cfg.PeerTLS
			return runDcsRestore(cmd.Context(), f, o)
		},
	}
	cmd.Flags().StringVar(&o.from, "from", "", "snapshot FILE to restore (required)")
	addMemberFlags(cmd.Flags(), &o.cfg)
	return cmd
}

func runDcsRestore(ctx context.Context, f *Factory, o *dcsRestoreOptions) error {
	l, err := f.dcsLocal()
	if err != nil {
		return err
	}
	mi, err := l.Restore(ctx, o.cfg, o.from)
	if err != nil {
		return err
	}
	fmt.Fprintf(f.IO.Out, "member %s is up with the state of %s: a new cluster %s (term %d); set the other members up again with `pgherd dcs join --peer %s`\n",
		mi.Name, o.from, mi.ClusterID, mi.Term, cmp.Or(o.cfg.AdvertisePeer, o.cfg.ListenPeer))
	return nil
}
