package cli

import (
	"fmt"

	"github.com/spf13/cobra"
)

func newCmdSite(f *Factory) *cobra.Command {
	cmd := &cobra.Command{Use: "site", Short: "Inspect the site settings"}
	cmd.AddCommand(newCmdSiteShow(f))
	return cmd
}

func newCmdSiteShow(f *Factory) *cobra.Command {
	var format string
	cmd := &cobra.Command{
		Use:   "show",
		Short: "Print the effective site settings (defaults < site file < PGHERD_* variables)",
		Args:  exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkOutput(format); err != nil {
				return err
			}
			s, err := f.Settings()
			if err != nil {
				return err
			}
			if format != "" {
				return writeData(f.IO.Out, format, s.Settings)
			}
			src := "built-in defaults (no site file found)"
			if s.File != "" {
				src = s.File
			}
			fmt.Fprintf(f.IO.Out, "# effective settings; file: %s\n", src)
			return writeData(f.IO.Out, "yaml", s.Settings)
		},
	}
	outputFlag(cmd, &format)
	return cmd
}
