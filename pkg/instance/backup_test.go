package instance

import "testing"

// TestLastFatalSkipsRefusedConnections: the log of a failed recovery as
// a CI run wrote it, where pgherd's probe was refused after the startup
// process had failed; the startup process's FATAL is what explains it.
func TestLastFatalSkipsRefusedConnections(t *testing.T) {
	log := `2026-12-06 19:07:38.860 UTC [18620] LOG:  last completed transaction was at log time 2026-12-06 19:07:33.1+00
2026-12-06 19:07:38.861 UTC [18620] FATAL:  recovery ended before configured recovery target was reached
2026-12-06 19:07:38.865 UTC [18656] postgres@postgres FATAL:  the database system is in recovery mode
2026-12-06 19:07:38.866 UTC [18619] LOG:  shutting down due to startup process failure
2026-12-06 19:07:38.869 UTC [18619] LOG:  database system is shut down
`
	if got := lastFatalIn(log); got != "recovery ended before configured recovery target was reached" {
		t.Fatalf("last FATAL: %q", got)
	}
	if got := lastFatalIn("x FATAL:  the database system is starting up\n"); got != "" {
		t.Fatalf("only refused connections: %q", got)
	}
}
