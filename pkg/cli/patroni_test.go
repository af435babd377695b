package cli

import (
	"errors"
	"strings"
	"testing"

	"github.com/pgherd/pgherd/pkg/iostreams"
)

// Flags are checked before anything is looked up: these fail as usage
// errors with the exact text.
func TestPatroniFlagErrors(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"instance", "create", "pg1", "--patroni-node", "n1"}, "--patroni-node needs --patroni-cluster"},
		{[]string{"instance", "create", "pg1", "--patroni-dcs-hosts", "h:1"}, "--patroni-dcs-hosts needs --patroni-cluster"},
		{[]string{"patroni", "list"}, "pgherd patroni list expects one instance NAME or --cluster CLUSTER"},
		{[]string{"patroni", "list", "pg1", "--cluster", "main"}, "pgherd patroni list expects one instance NAME or --cluster CLUSTER"},
		{[]string{"patroni", "failover", "pg1"}, "--candidate NODE is required"},
		{[]string{"patroni", "switchover"}, "pgherd patroni switchover expects one instance NAME"},
	} {
		ios, _, _, _ := iostreams.Test()
		root := NewCmdRoot(NewFactory(ios))
		root.SetArgs(c.args)
		err := root.Execute()
		var ue usageError
		if !errors.As(err, &ue) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: got %v, want a usage error with %q", c.args, err, c.want)
		}
	}
}
