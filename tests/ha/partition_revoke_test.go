package ha

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgconn/ctxwatch"

	"github.com/pgherd/pgherd/tests/hacluster"
)

// checkTimeout is how long the commit checker waits for a commit: one
// that waits longer (for a synchronous standby) is not accepted.
const checkTimeout = 300 * time.Millisecond

// sockClient talks to one node's PostgreSQL by its unix socket, which this
// process reaches whatever the node's network namespace: a client on the
// node's side of any cut. A commit is acknowledged only when it succeeds
// with no warning: when the client gives up on a commit that waits for
// its synchronous standby, pgx sends a cancel request, and PostgreSQL
// then ends the wait with a warning and reports the commit, committed
// locally but not replicated, as a success.
type sockClient struct {
	c      *hacluster.Cluster
	n      *hacluster.Node
	conn   *pgx.Conn
	notice string // the last notice of the running statement
}

func (s *sockClient) connect(ctx context.Context) error {
	cfg, err := pgx.ParseConfig("dbname=postgres connect_timeout=2")
	if err != nil {
		return err
	}
	cfg.Host, cfg.Port = filepath.Join(s.n.Dir, "run"), uint16(s.n.PGPort)
	cfg.User, cfg.Password = "postgres", s.c.Creds.Superuser.Reveal()
	cfg.Fallbacks = nil
	cfg.OnNotice = func(_ *pgconn.PgConn, n *pgconn.Notice) { s.notice = n.Severity + ": " + n.Message }
	// A cancel request, not a closed socket: a backend waiting for its
	// synchronous standby does not notice its client is gone, and would
	// hold its connection slot until PostgreSQL stops.
	cfg.BuildContextWatcherHandler = func(pc *pgconn.PgConn) ctxwatch.Handler {
		return &pgconn.CancelRequestContextWatcherHandler{Conn: pc, DeadlineDelay: 500 * time.Millisecond}
	}
	s.conn, err = pgx.ConnectConfig(ctx, cfg)
	return err
}

// exec runs sql as a transaction of its own, waiting at most d for it, and
// returns nil only when its commit was acknowledged. A connection that
// failed is dropped, to be made again by the next call.
func (s *sockClient) exec(ctx context.Context, d time.Duration, sql string, args ...any) error {
	if s.conn == nil {
		cctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		err := s.connect(cctx)
		cancel()
		if err != nil {
			return err
		}
	}
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	s.notice = ""
	_, err := s.conn.Exec(ctx, sql, args...)
	if err == nil && s.notice != "" {
		err = fmt.Errorf("not acknowledged, it came with %q", s.notice)
	}
	// A server's refusal (a replica's read-only error) leaves the
	// connection usable.
	var pgErr *pgconn.PgError
	if err != nil && (s.conn.IsClosed() || !errors.As(err, &pgErr)) {
		s.close()
	}
	return err
}

func (s *sockClient) close() {
	if s.conn != nil {
		s.conn.Close(context.Background())
		s.conn = nil
	}
}

// ackedRow is a row whose commit the writer saw acknowledged, and when.
type ackedRow struct {
	id int
	at time.Time
}

// writeErr is an error of the writer, and when it came.
type writeErr struct {
	at  time.Time
	msg string
}

// pinnedWriter inserts increasing ids into table acked on one node only,
// by its socket, whatever that node has become, and records the commits
// acknowledged.
type pinnedWriter struct {
	mu     sync.Mutex
	acked  []ackedRow
	fails  int
	errs   []writeErr // the first distinct errors, in order
	cancel context.CancelFunc
	done   chan struct{}
}

func startPinnedWriter(c *hacluster.Cluster, n *hacluster.Node, interval time.Duration) *pinnedWriter {
	ctx, cancel := context.WithCancel(context.Background())
	w := &pinnedWriter{cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(w.done)
		s := &sockClient{c: c, n: n}
		defer s.close()
		for id := 1; ; id++ {
			select {
			case <-ctx.Done():
				return
			case <-time.After(interval):
			}
			// Long enough never to give up on a commit before the node's
			// Patroni stops PostgreSQL, which ends a waiting commit without
			// acknowledging it.
			err := s.exec(ctx, 30*time.Second, "insert into acked values ($1)", id)
			at := time.Now()
			w.mu.Lock()
			if err == nil {
				w.acked = append(w.acked, ackedRow{id, at})
			} else {
				w.fails++
				if msg := err.Error(); len(w.errs) < 6 && (len(w.errs) == 0 || w.errs[len(w.errs)-1].msg != msg) {
					w.errs = append(w.errs, writeErr{at, msg})
				}
			}
			w.mu.Unlock()
		}
	}()
	return w
}

// Acked returns the rows acknowledged so far.
func (w *pinnedWriter) Acked() []ackedRow {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]ackedRow(nil), w.acked...)
}

// Stop ends the writer; a commit it is waiting for is given up, not
// acknowledged. Safe to call twice.
func (w *pinnedWriter) Stop() { w.cancel(); <-w.done }

func ids(rows []ackedRow) []int {
	out := make([]int, len(rows))
	for i, r := range rows {
		out[i] = r.id
	}
	return out
}

// commitRound is one round of the commit checker: whether each node
// acknowledged its commit, and when the answer came.
type commitRound struct {
	start time.Time
	ok    [2]bool
	end   [2]time.Time
}

// commitChecker tries a tiny commit on both nodes every 100 ms, in
// parallel, each by its socket and within checkTimeout.
type commitChecker struct {
	mu     sync.Mutex
	rounds []commitRound
	cancel context.CancelFunc
	done   chan struct{}
}

func startCommitChecker(c *hacluster.Cluster) *commitChecker {
	ctx, cancel := context.WithCancel(context.Background())
	k := &commitChecker{cancel: cancel, done: make(chan struct{})}
	clients := []*sockClient{{c: c, n: c.Nodes[0]}, {c: c, n: c.Nodes[1]}}
	go func() {
		defer close(k.done)
		defer func() {
			for _, s := range clients {
				s.close()
			}
		}()
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			r := commitRound{start: time.Now()}
			var wg sync.WaitGroup
			for i, s := range clients {
				wg.Add(1)
				go func() {
					defer wg.Done()
					r.ok[i] = s.exec(ctx, checkTimeout, "insert into ha_check values (1)") == nil
					r.end[i] = time.Now()
				}()
			}
			wg.Wait()
			if ctx.Err() != nil {
				return // a round cut short by Stop
			}
			k.mu.Lock()
			k.rounds = append(k.rounds, r)
			k.mu.Unlock()
		}
	}()
	return k
}

// Rounds returns the rounds so far.
func (k *commitChecker) Rounds() []commitRound {
	k.mu.Lock()
	defer k.mu.Unlock()
	return append([]commitRound(nil), k.rounds...)
}

// Stop ends the checker. Safe to call twice.
func (k *commitChecker) Stop() { k.cancel(); <-k.done }

// roundsSince counts the rounds that started after t, and those in which
// node i accepted.
func roundsSince(rounds []commitRound, i int, t time.Time) (n, accepted int) {
	for _, r := range rounds {
		if r.start.After(t) {
			n++
			if r.ok[i] {
				accepted++
			}
		}
	}
	return n, accepted
}

// TestPartitionWithRevocation cuts the primary's host off the network of
// a strict synchronous cluster at the fast profile with host-aware
// revocation, and kills nothing: the old primary lives on, isolated, and
// a client on its side (by its socket) goes on committing every 50 ms,
// while a checker tries a commit on both nodes every 100 ms. The replica
// must be promoted through one revocation within revokeBound; no round of
// the checker may see both nodes accept a commit, no commit the old
// primary acknowledged may come after the new primary's first, and every
// row the writer saw acknowledged must be on the new primary, at the
// promotion and after the healed old primary has rejoined as a replica.
// With two data hosts in strict mode the new primary takes no commit
// until its standby is back (docs/ha-witness.md, "Host-aware
// revocation"): that is asserted too.
func TestPartitionWithRevocation(t *testing.T) {
	ctx := ctxT(t, 5*time.Minute)
	c, nw, tm, detect := startRevokeCluster(t, ctx, "pr")
	prim, err := c.Primary(ctx)
	if err != nil {
		t.Fatal(err)
	}
	other := c.Other(prim)
	pi, oi := 0, 1
	if prim == c.Nodes[1] {
		pi, oi = 1, 0
	}
	idx := 0
	if prim.Name == nw.Hosts[1].Name {
		idx = 1
	}
	if err := c.WaitSyncStandby(ctx, other); err != nil {
		t.Fatal(err)
	}
	setup := &sockClient{c: c, n: prim}
	err = setup.exec(ctx, 30*time.Second, "create table acked(id int primary key); create table ha_check(i int)")
	setup.close()
	if err != nil {
		t.Fatalf("creating the tables: %v", err)
	}

	w := startPinnedWriter(c, prim, 50*time.Millisecond)
	t.Cleanup(w.Stop)
	k := startCommitChecker(c)
	t.Cleanup(k.Stop)
	if err := hacluster.Poll(ctx, 30*time.Second, 100*time.Millisecond, func() error {
		_, okP := roundsSince(k.Rounds(), pi, time.Time{})
		if n := len(w.Acked()); n < 20 || okP < 5 {
			return fmt.Errorf("%d commits acknowledged to the writer, %d to the checker", n, okP)
		}
		return nil
	}); err != nil {
		t.Fatalf("before the cut, on %s: %v", prim.Name, err)
	}

	// The cut: the old primary and its writer stay alive, on their side.
	if err := nw.Cut(idx); err != nil {
		t.Fatal(err)
	}
	cut := time.Now() // the link is down
	bound := revokeBound(tm, detect)
	pctx, pcancel := context.WithTimeout(ctx, bound)
	err = c.WaitPromoted(pctx, other)
	pcancel()
	if err != nil {
		t.Fatalf("%s was not promoted within %s of %s's cut: %v", other.Name, bound, prim.Name, err)
	}
	promoted := time.Since(cut)
	if n := revocationsLogged(c); n != 1 {
		t.Fatalf("the DCS logged %d host-aware revocations, want 1", n)
	}
	early := w.Acked()
	if miss, err := c.Missing(ctx, other, ids(early)); err != nil || len(miss) > 0 {
		t.Fatalf("at the promotion %d of %d acknowledged rows are missing on %s: %v %v", len(miss), len(early), other.Name, miss, err)
	}
	// The isolated old primary: its Patroni, cut off from the DCS,
	// demotes it.
	if err := hacluster.Poll(ctx, time.Minute, 200*time.Millisecond, func() error {
		if rec, err := c.InRecovery(ctx, prim); err == nil && !rec {
			return fmt.Errorf("%s is still a primary", prim.Name)
		}
		return nil
	}); err != nil {
		t.Fatalf("the isolated old primary: %v", err)
	}
	demoted := time.Since(cut)
	// The checker asks both sides for a while with the new primary
	// promoted and the old one cut off.
	after := time.Now()
	if err := hacluster.Poll(ctx, time.Minute, 100*time.Millisecond, func() error {
		if n, _ := roundsSince(k.Rounds(), oi, after); n < 20 {
			return fmt.Errorf("%d rounds since the promotion", n)
		}
		return nil
	}); err != nil {
		t.Fatalf("the checker: %v", err)
	}

	heal := time.Now()
	if err := nw.Heal(idx); err != nil {
		t.Fatal(err)
	}
	hctx, hcancel := context.WithTimeout(ctx, 2*time.Minute)
	err = c.WaitHealthy(hctx)
	hcancel()
	if err != nil {
		t.Fatalf("the old primary did not rejoin: %v", err)
	}
	if rec, err := c.InRecovery(ctx, prim); err != nil || !rec {
		t.Fatalf("old primary %s after rejoin: in recovery %v, %v", prim.Name, rec, err)
	}
	if err := hacluster.Poll(ctx, time.Minute, 100*time.Millisecond, func() error {
		if _, ok := roundsSince(k.Rounds(), oi, heal); ok < 5 {
			return fmt.Errorf("%s accepted %d checks since the heal", other.Name, ok)
		}
		return nil
	}); err != nil {
		t.Fatalf("the new primary with its standby back: %v", err)
	}
	k.Stop()
	w.Stop()

	rounds, acked := k.Rounds(), w.Acked()
	double, newBeforeHeal, oldAfterCut := 0, 0, 0
	var lastOld, firstNew time.Time
	for _, r := range rounds {
		if r.ok[0] && r.ok[1] {
			double++
		}
		if r.ok[oi] && r.start.Before(heal) {
			newBeforeHeal++
		}
		if r.ok[oi] && (firstNew.IsZero() || r.start.Before(firstNew)) {
			firstNew = r.start
		}
		if r.ok[pi] {
			lastOld = r.end[pi]
			if r.start.After(cut) {
				oldAfterCut++
			}
		}
	}
	writerAfterCut := 0
	for _, a := range acked {
		if a.at.After(lastOld) {
			lastOld = a.at
		}
		if a.at.After(cut) {
			writerAfterCut++
		}
	}
	t.Logf("%s cut off: %s promoted after %s (bound %s), %s not a primary when checked next, %s after the cut; healed after %s; "+
		"the new primary's first accepted commit %s after the heal",
		prim.Name, other.Name, promoted.Round(10*time.Millisecond), bound, prim.Name, demoted.Round(10*time.Millisecond),
		heal.Sub(cut).Round(10*time.Millisecond), firstNew.Sub(heal).Round(10*time.Millisecond))
	t.Logf("writer on %s: %d commits acknowledged (%d after the cut; the old primary's last acknowledgment, writer or checker, at cut%+.3fs), %d not",
		prim.Name, len(acked), writerAfterCut, lastOld.Sub(cut).Seconds(), w.fails)
	for _, e := range w.errs {
		t.Logf("  writer error at cut%+.2fs: %s", e.at.Sub(cut).Seconds(), e.msg)
	}
	t.Logf("checker: %d rounds, %d with both accepting, %s accepted %d after the cut, %s accepted %d before the heal",
		len(rounds), double, prim.Name, oldAfterCut, other.Name, newBeforeHeal)

	if double > 0 {
		t.Errorf("both nodes accepted a commit in %d of %d rounds", double, len(rounds))
	}
	if !lastOld.Before(firstNew) {
		t.Errorf("the old primary %s acknowledged a commit at %s, after the new primary's first at %s",
			prim.Name, lastOld.Format(time.StampMilli), firstNew.Format(time.StampMilli))
	}
	if newBeforeHeal > 0 {
		t.Errorf("the new primary %s, with no standby (strict synchronous mode), accepted %d commits before the heal", other.Name, newBeforeHeal)
	}
	if miss, err := c.Missing(ctx, other, ids(acked)); err != nil || len(miss) > 0 {
		t.Errorf("after the heal %d of %d acknowledged rows are missing on %s: %v %v", len(miss), len(acked), other.Name, miss, err)
	}
}
