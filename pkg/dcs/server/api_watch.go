package server

import (
	"bytes"
	"errors"
	"io"
	"sync"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"

	"github.com/pgherd/pgherd/pkg/dcs/mvcc"
)

// progressInterval is how often a watch with progress_notify and no
// events gets an empty response carrying the current revision (etcd's
// default is ten minutes).
var progressInterval = 10 * time.Minute

type watchServer struct {
	pb.UnimplementedWatchServer
	s *Server
}

// watchStream is one Watch RPC: any number of watchers multiplexed on it.
type watchStream struct {
	s      *Server
	stream pb.Watch_WatchServer
	sendMu sync.Mutex
	mu     sync.Mutex
	nextID int64
	ws     map[int64]*mvcc.Watcher
	wg     sync.WaitGroup
}

// Watch serves watchers until the client goes away. Unlike a keepalive, a
// watch stream does not end when the client half-closes: the JSON gateway
// half-closes right after the create request and expects events to keep
// coming.
func (w *watchServer) Watch(stream pb.Watch_WatchServer) error {
	ws := &watchStream{s: w.s, stream: stream, ws: map[int64]*mvcc.Watcher{}}
	errc := make(chan error, 1)
	go func() {
		for {
			req, err := stream.Recv()
			if err != nil {
				if err != io.EOF {
					errc <- err
				}
				return
			}
			if err := safely(w.s.node.log, "watch request", func() error { return ws.handle(req) }); err != nil {
				errc <- err
				return
			}
		}
	}()
	// A member cut off from the leader ends its watch streams with etcd's
	// "no leader" error, as etcd does for clients that require a leader:
	// a silent stream would leave the client's cached view (Patroni's) stale
	// for as long as the partition lasts.
	tick := time.NewTicker(w.s.node.cfg.HeartbeatTimeout / 4)
	defer tick.Stop()
	var err error
wait:
	for {
		select {
		case <-stream.Context().Done():
			break wait
		case err = <-errc:
			break wait
		case <-w.s.node.closed:
			break wait
		case <-tick.C:
			if !w.s.node.inContact() {
				err = rpctypes.ErrGRPCNoLeader
				break wait
			}
		}
	}
	ws.mu.Lock()
	for id, wt := range ws.ws {
		wt.Close()
		delete(ws.ws, id)
	}
	ws.mu.Unlock()
	return err
}

func (ws *watchStream) send(r *pb.WatchResponse) error {
	ws.sendMu.Lock()
	defer ws.sendMu.Unlock()
	return ws.stream.Send(r)
}

func (ws *watchStream) header() *pb.ResponseHeader {
	h := &pb.ResponseHeader{Revision: ws.s.node.fsm.store.Rev()}
	ws.s.stampNoRev(h)
	return h
}

func (ws *watchStream) handle(req *pb.WatchRequest) error {
	switch {
	case req.GetCreateRequest() != nil:
		return ws.create(req.GetCreateRequest())
	case req.GetCancelRequest() != nil:
		id := req.GetCancelRequest().WatchId
		ws.mu.Lock()
		wt, ok := ws.ws[id]
		delete(ws.ws, id)
		ws.mu.Unlock()
		if ok {
			wt.Close()
			return ws.send(&pb.WatchResponse{Header: ws.header(), WatchId: id, Canceled: true})
		}
	case req.GetProgressRequest() != nil:
		return ws.send(&pb.WatchResponse{Header: ws.header(), WatchId: -1})
	}
	return nil
}

// Watch creations etcd refuses: answered created and canceled at once,
// with watch ID -1 and etcd's reason, and nothing is registered.
var (
	errWatchDuplicateID = errors.New("mvcc: duplicate watch ID provided on the WatchStream")
	errWatchEmptyRange  = errors.New("mvcc: watcher range is empty")
)

func (ws *watchStream) refuse(reason error) error {
	return ws.send(&pb.WatchResponse{Header: ws.header(), WatchId: -1, Created: true, Canceled: true, CancelReason: reason.Error()})
}

func (ws *watchStream) create(cr *pb.WatchCreateRequest) error {
	// A range end "\x00" means every key from key on; any other must be
	// above key.
	if end := cr.RangeEnd; len(end) > 0 && !(len(end) == 1 && end[0] == 0) && bytes.Compare(cr.Key, end) >= 0 {
		return ws.refuse(errWatchEmptyRange)
	}
	ws.mu.Lock()
	id := cr.WatchId
	if id != 0 && ws.ws[id] != nil {
		ws.mu.Unlock()
		return ws.refuse(errWatchDuplicateID)
	}
	if id == 0 {
		for ws.ws[ws.nextID] != nil {
			ws.nextID++
		}
		id = ws.nextID
		ws.nextID++
	}
	ws.mu.Unlock()
	wt, err := ws.s.node.fsm.store.Watch(cr)
	if err != nil {
		// etcd answers created, then cancels with the reason: a watch on
		// compacted history carries the compaction revision.
		if err := ws.send(&pb.WatchResponse{Header: ws.header(), WatchId: id, Created: true}); err != nil {
			return err
		}
		h := &pb.ResponseHeader{}
		ws.s.stampNoRev(h)
		c := &pb.WatchResponse{Header: h, WatchId: id, Canceled: true}
		if errors.Is(err, mvcc.ErrCompacted) {
			c.CompactRevision = ws.s.node.fsm.store.CompactRev()
		} else {
			c.CancelReason = err.Error()
		}
		return ws.send(c)
	}
	ws.mu.Lock()
	ws.ws[id] = wt
	ws.mu.Unlock()
	if err := ws.send(&pb.WatchResponse{Header: ws.header(), WatchId: id, Created: true}); err != nil {
		return err
	}
	go safely(ws.s.node.log, "watch", func() error { ws.pump(id, wt, cr.ProgressNotify); return nil })
	return nil
}

// pump forwards one watcher's events in order. If the store closes the
// channel without a cancel from us (the watcher fell too far behind), the
// client is told the watch is canceled.
func (ws *watchStream) pump(id int64, wt *mvcc.Watcher, progress bool) {
	var tick <-chan time.Time
	if progress {
		t := time.NewTicker(progressInterval)
		defer t.Stop()
		tick = t.C
	}
	sent := false
	for {
		select {
		case b, ok := <-wt.C():
			if !ok {
				ws.mu.Lock()
				_, ours := ws.ws[id]
				delete(ws.ws, id)
				ws.mu.Unlock()
				if ours {
					h := &pb.ResponseHeader{}
					ws.s.stampNoRev(h)
					c := &pb.WatchResponse{Header: h, WatchId: id, Canceled: true}
					if errors.Is(wt.Err(), mvcc.ErrCompacted) {
						c.CompactRevision = wt.CompactRev()
					} else if wt.Err() != nil {
						c.CancelReason = wt.Err().Error()
					}
					ws.send(c)
				}
				return
			}
			h := ws.header()
			h.Revision = b.Rev
			if ws.send(&pb.WatchResponse{Header: h, WatchId: id, Events: b.Events}) != nil {
				return
			}
			sent = true
		case <-tick:
			// As etcd: only a watcher with no events in the interval, and
			// only once it has delivered everything up to the revision
			// it reports.
			if rev, synced := wt.Progress(); !sent && synced {
				h := ws.header()
				h.Revision = rev
				if ws.send(&pb.WatchResponse{Header: h, WatchId: id}) != nil {
					return
				}
			}
			sent = false
		}
	}
}
