package cli

import (
	"bufio"
	"fmt"
	"strings"

	"github.com/pgherd/pgherd/pkg/iostreams"
)

// confirm asks a yes/no question on a terminal; the default is no. Without
// a terminal it answers no and says nothing: callers decide what "no
// terminal" means (fail with "use --yes", or leave something pending).
func confirm(ios *iostreams.IOStreams, question string) bool {
	if !ios.CanPrompt() {
		return false
	}
	fmt.Fprintf(ios.ErrOut, "%s [y/N] ", question)
	line, _ := bufio.NewReader(ios.In).ReadString('\n')
	switch strings.ToLower(strings.TrimSpace(line)) {
	case "y", "yes":
		return true
	}
	return false
}
