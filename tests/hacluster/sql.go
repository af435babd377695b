package hacluster

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"runtime"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"golang.org/x/sys/unix"
)

// dial opens a TCP connection from inside h's network namespace (or from
// here). A socket stays in the namespace it was made in, so only its
// creation needs the switch, on a locked thread that switches back before
// it is unlocked. The thread must survive: a child started with
// Pdeathsig from a thread that exits would be killed with it.
func (h Host) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	d := net.Dialer{Timeout: time.Second}
	if h.Netns == "" {
		return d.DialContext(ctx, network, addr)
	}
	type res struct {
		c   net.Conn
		err error
	}
	ch := make(chan res, 1)
	go func() {
		runtime.LockOSThread()
		home, err := os.Open("/proc/thread-self/ns/net")
		if err != nil {
			runtime.UnlockOSThread()
			ch <- res{nil, err}
			return
		}
		defer home.Close()
		target, err := os.Open("/run/netns/" + h.Netns)
		if err != nil {
			runtime.UnlockOSThread()
			ch <- res{nil, err}
			return
		}
		defer target.Close()
		if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			ch <- res{nil, fmt.Errorf("setns %s: %w", h.Netns, err)}
			return
		}
		c, err := d.DialContext(ctx, network, addr)
		ch <- res{c, err}
		if unix.Setns(int(home.Fd()), unix.CLONE_NEWNET) == nil {
			runtime.UnlockOSThread()
		} // else the goroutine ends locked and the runtime retires the thread
	}()
	r := <-ch
	return r.c, r.err
}

// Connect opens a connection to node n's PostgreSQL as the superuser, from
// inside n's host (1 s connect timeout).
func (c *Cluster) Connect(ctx context.Context, n *Node) (*pgx.Conn, error) {
	cfg, err := pgx.ParseConfig("dbname=postgres connect_timeout=1")
	if err != nil {
		return nil, err
	}
	cfg.Host, cfg.Port = n.Host.Addr, uint16(n.PGPort)
	cfg.User, cfg.Password = "postgres", c.Creds.Superuser.Reveal()
	cfg.DialFunc = n.Host.dial
	cfg.Fallbacks = nil
	return pgx.ConnectConfig(ctx, cfg)
}

// Writable reports whether n's PostgreSQL accepts a write now (false with
// the reason when it does not answer or is read-only).
func (c *Cluster) Writable(ctx context.Context, n *Node) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	conn, err := c.Connect(ctx, n)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	_, err = conn.Exec(ctx, "create table if not exists ha_probe(i int); insert into ha_probe values (1)")
	return err
}

// InRecovery reports pg_is_in_recovery() of n.
func (c *Cluster) InRecovery(ctx context.Context, n *Node) (bool, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	conn, err := c.Connect(ctx, n)
	if err != nil {
		return false, err
	}
	defer conn.Close(context.Background())
	var rec bool
	return rec, conn.QueryRow(ctx, "select pg_is_in_recovery()").Scan(&rec)
}

// Primary returns the one node that is not in recovery.
func (c *Cluster) Primary(ctx context.Context) (*Node, error) {
	var prim []*Node
	for _, n := range c.Nodes {
		if rec, err := c.InRecovery(ctx, n); err == nil && !rec {
			prim = append(prim, n)
		}
	}
	if len(prim) != 1 {
		return nil, fmt.Errorf("%d primaries", len(prim))
	}
	return prim[0], nil
}

// Other returns the node that is not n.
func (c *Cluster) Other(n *Node) *Node {
	if c.Nodes[0] == n {
		return c.Nodes[1]
	}
	return c.Nodes[0]
}

// WaitHealthy waits until one node is primary and the other streams from
// it.
func (c *Cluster) WaitHealthy(ctx context.Context) error {
	return poll(ctx, 250*time.Millisecond, func() error {
		p, err := c.Primary(ctx)
		if err != nil {
			return err
		}
		conn, err := c.Connect(ctx, p)
		if err != nil {
			return err
		}
		defer conn.Close(context.Background())
		var n int
		if err := conn.QueryRow(ctx, "select count(*) from pg_stat_replication where state = 'streaming'").Scan(&n); err != nil {
			return err
		}
		if n != 1 {
			return fmt.Errorf("primary %s has %d streaming replicas", p.Name, n)
		}
		// pg_basebackup's WAL stream also shows as streaming: the replica
		// must be up and in recovery too.
		rec, err := c.InRecovery(ctx, c.Other(p))
		if err != nil || !rec {
			return fmt.Errorf("replica %s is not in recovery yet (%v)", c.Other(p).Name, err)
		}
		return nil
	})
}

// WaitWritable polls n every interval until it takes a write, and returns
// when it did.
func (c *Cluster) WaitWritable(ctx context.Context, n *Node, interval time.Duration) (time.Time, error) {
	err := poll(ctx, interval, func() error { return c.Writable(ctx, n) })
	return time.Now(), err
}

// Writer inserts increasing ids into table acked on whichever node is
// primary, and records the ids whose commit was acknowledged.
type Writer struct {
	c     *Cluster
	Acked []int
	Fails int
	acks  atomic.Int64 // len(Acked), safe to read while it runs
	stop  chan struct{}
	done  chan struct{}
}

// StartWriter creates table acked and starts writing every interval.
func (c *Cluster) StartWriter(ctx context.Context, interval time.Duration) (*Writer, error) {
	p, err := c.Primary(ctx)
	if err != nil {
		return nil, err
	}
	conn, err := c.Connect(ctx, p)
	if err != nil {
		return nil, err
	}
	_, err = conn.Exec(ctx, "create table if not exists acked(id int primary key)")
	conn.Close(context.Background())
	if err != nil {
		return nil, err
	}
	w := &Writer{c: c, stop: make(chan struct{}), done: make(chan struct{})}
	go w.run(interval)
	return w, nil
}

func (w *Writer) run(interval time.Duration) {
	defer close(w.done)
	id := 0
	var conn *pgx.Conn
	defer func() {
		if conn != nil {
			conn.Close(context.Background())
		}
	}()
	for {
		select {
		case <-w.stop:
			return
		case <-time.After(interval):
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		if conn == nil {
			for _, n := range w.c.Nodes {
				if rec, err := w.c.InRecovery(ctx, n); err == nil && !rec {
					conn, _ = w.c.Connect(ctx, n)
					break
				}
			}
		}
		if conn == nil {
			w.Fails++
			cancel()
			continue
		}
		id++
		if _, err := conn.Exec(ctx, "insert into acked values ($1)", id); err != nil {
			w.Fails++
			conn.Close(context.Background())
			conn = nil
		} else {
			w.Acked = append(w.Acked, id)
			w.acks.Add(1)
		}
		cancel()
	}
}

// WaitAcked waits until at least n commits were acknowledged.
func (w *Writer) WaitAcked(ctx context.Context, n int64) error {
	return poll(ctx, 50*time.Millisecond, func() error {
		if got := w.acks.Load(); got < n {
			return fmt.Errorf("%d of %d commits acknowledged", got, n)
		}
		return nil
	})
}

// Stop ends the writer.
func (w *Writer) Stop() {
	close(w.stop)
	<-w.done
}

// Missing returns the acknowledged ids that node n does not have.
func (c *Cluster) Missing(ctx context.Context, n *Node, acked []int) ([]int, error) {
	conn, err := c.Connect(ctx, n)
	if err != nil {
		return nil, err
	}
	defer conn.Close(context.Background())
	have := map[int]bool{}
	rows, err := conn.Query(ctx, "select id from acked")
	if err != nil {
		return nil, err
	}
	for rows.Next() {
		var id int
		if err := rows.Scan(&id); err != nil {
			return nil, err
		}
		have[id] = true
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	var miss []int
	for _, id := range acked {
		if !have[id] {
			miss = append(miss, id)
		}
	}
	return miss, nil
}

// ErrNoFailover is returned by MeasureFailover when the survivor never
// took a write.
var ErrNoFailover = errors.New("the replica was not promoted")

// Failover is one measured failover.
type Failover struct {
	RTO           time.Duration // kill → first write on the survivor
	DCSLeaderDied bool          // the killed host's DCS member led Raft (DCSPgherd)
	Old, New      *Node
}

// MeasureFailover kills the primary's host and times the first write on
// the other node, polling every 100 ms, within limit.
func (c *Cluster) MeasureFailover(ctx context.Context, limit time.Duration) (*Failover, error) {
	old, err := c.Primary(ctx)
	if err != nil {
		return nil, err
	}
	f := &Failover{Old: old, New: c.Other(old)}
	if c.Opts.DCS == DCSPgherd {
		if l, err := c.DCSLeader(ctx); err == nil {
			f.DCSLeaderDied = l == old.Name
		}
	}
	start := time.Now()
	c.KillHost(old)
	wctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	at, err := c.WaitWritable(wctx, f.New, 100*time.Millisecond)
	if err != nil {
		return f, fmt.Errorf("%w within %s: %v", ErrNoFailover, limit, err)
	}
	f.RTO = at.Sub(start)
	return f, nil
}

// String formats a duration in seconds with two decimals.
func secs(d time.Duration) string { return strconv.FormatFloat(d.Seconds(), 'f', 2, 64) + " s" }

// Describe says what a failover measured.
func (f *Failover) Describe() string {
	return fmt.Sprintf("%s → %s in %s (DCS leader died with it: %v)", f.Old.Name, f.New.Name, secs(f.RTO), f.DCSLeaderDied)
}
