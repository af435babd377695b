// Command gendocs writes pgherd's Markdown command reference into a
// directory ('make docs' runs it on docs/reference). It lives outside the
// pgherd binary so that the binary does not carry the Markdown renderer.
package main

import (
	"fmt"
	"os"

	"github.com/pgherd/pgherd/pkg/cli"
	"github.com/pgherd/pgherd/pkg/iostreams"
	"github.com/spf13/cobra/doc"
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: go run ./tests/gendocs DIR")
		os.Exit(2)
	}
	if err := write(os.Args[1]); err != nil {
		fmt.Fprintln(os.Stderr, "gendocs:", err)
		os.Exit(1)
	}
}

func write(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	root := cli.NewCmdRoot(cli.NewFactory(iostreams.System()))
	root.DisableAutoGenTag = true
	root.InitDefaultCompletionCmd() // cobra adds it only when executing
	if err := doc.GenMarkdownTree(root, dir); err != nil {
		return fmt.Errorf("writing the command reference: %w", err)
	}
	return nil
}
