package cli

import (
	"encoding/json"
	"fmt"
	"os"

	"github.com/pgherd/pgherd/pkg/site"
	"github.com/spf13/cobra"
	"gopkg.in/yaml.v3"
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
		Short: "Print the effective site settings and where each comes from (defaults < site file < PGHERD_* variables)",
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
			switch {
			case f.SiteFile != "":
				src = s.File + " (--site)"
			case os.Getenv(site.SiteVar) != "":
				src = s.File + " (" + site.SiteVar + ")"
			case s.File != "":
				src = s.File
			}
			fmt.Fprintf(f.IO.Out, "# effective settings; file: %s\n# each value's origin: default, file, or the PGHERD_* variable that sets it\n", src)
			n, err := originsYAML(s)
			if err != nil {
				return err
			}
			return writeYAML(f.IO.Out, n)
		},
	}
	outputFlag(cmd, &format)
	return cmd
}

// originsYAML is the settings as YAML, each value commented with its origin.
func originsYAML(s *site.Loaded) (*yaml.Node, error) {
	b, err := json.Marshal(emptyNotNull(s.Settings))
	if err != nil {
		return nil, err
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(b, &doc); err != nil {
		return nil, err
	}
	var walk func(n *yaml.Node, path string)
	walk = func(n *yaml.Node, path string) {
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			key := k.Value
			if path != "" {
				key = path + "." + k.Value
			}
			if v.Kind == yaml.MappingNode {
				walk(v, key)
				continue
			}
			at := k // an empty list [] carries its comment itself
			if v.Kind == yaml.SequenceNode && len(v.Content) == 0 {
				at = v
			}
			switch o := s.Origins[key]; o {
			case site.FromEnv:
				at.LineComment = site.EnvVar(key)
			case "":
			default:
				at.LineComment = string(o)
			}
		}
	}
	if len(doc.Content) == 1 {
		walk(doc.Content[0], "")
	}
	return &doc, nil
}
