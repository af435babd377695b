package cli

import (
	"fmt"

	"github.com/pgherd/pgherd/docs/schemas"
	"github.com/spf13/cobra"
)

func newCmdSchema(f *Factory) *cobra.Command {
	return &cobra.Command{
		Use:   "schema [NAME]",
		Short: "List the shapes of -o json (see docs/json.md), or print the JSON Schema of one",
		Args:  maxArgs(1, "at most one shape NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 {
				for _, n := range schemas.Names() {
					fmt.Fprintln(f.IO.Out, n)
				}
				return nil
			}
			b, ok := schemas.Get(args[0])
			if !ok {
				return usageError{fmt.Errorf("no shape %q: 'pgherd schema' lists them", args[0])}
			}
			_, err := f.IO.Out.Write(b)
			return err
		},
	}
}
