package server

import (
	"context"
	"errors"
	"io"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/pgherd/pgherd/pkg/dcs"
	"github.com/pgherd/pgherd/pkg/dcs/mvcc"
)

// The etcd v3 services. Each handler validates what etcd validates before
// consensus, proposes or reads, and stamps the response header with this
// member's cluster ID, member ID and Raft term.

type kvServer struct {
	pb.UnimplementedKVServer
	s *Server
}

func (k *kvServer) Range(ctx context.Context, req *pb.RangeRequest) (*pb.RangeResponse, error) {
	if err := mvcc.CheckRange(req); err != nil {
		return nil, err
	}
	var resp *pb.RangeResponse
	var err error
	// Serializable reads are answered like linearizable ones, through the
	// leader, and fail at once on a member cut off from it: see "No stale
	// state" in DESIGN.md.
	switch {
	case req.Serializable && !k.s.node.inContact():
		return nil, rpctypes.ErrGRPCNoLeader
	default:
		resp = &pb.RangeResponse{}
		err = k.s.node.leaderRead(ctx, readRange, req, resp)
	}
	if err != nil {
		return nil, toGRPC(err)
	}
	k.s.stamp(&resp.Header)
	return resp, nil
}

func (k *kvServer) Put(ctx context.Context, req *pb.PutRequest) (*pb.PutResponse, error) {
	if len(req.Key) == 0 {
		return nil, rpctypes.ErrGRPCEmptyKey
	}
	resp := &pb.PutResponse{}
	return resp, k.s.proposeInto(ctx, opPut, req, resp, &resp.Header)
}

func (k *kvServer) DeleteRange(ctx context.Context, req *pb.DeleteRangeRequest) (*pb.DeleteRangeResponse, error) {
	if len(req.Key) == 0 {
		return nil, rpctypes.ErrGRPCEmptyKey
	}
	resp := &pb.DeleteRangeResponse{}
	return resp, k.s.proposeInto(ctx, opDeleteRange, req, resp, &resp.Header)
}

func (k *kvServer) Txn(ctx context.Context, req *pb.TxnRequest) (*pb.TxnResponse, error) {
	resp := &pb.TxnResponse{}
	return resp, k.s.proposeInto(ctx, opTxn, req, resp, &resp.Header)
}

func (k *kvServer) Compact(ctx context.Context, req *pb.CompactionRequest) (*pb.CompactionResponse, error) {
	if _, err := k.s.node.propose(ctx, encodeInts(opCompact, req.Revision)); err != nil {
		return nil, toGRPC(err)
	}
	resp := &pb.CompactionResponse{Header: &pb.ResponseHeader{Revision: k.s.node.fsm.store.Rev()}}
	k.s.stamp(&resp.Header)
	return resp, nil
}

// proposeInto commits req and copies the state machine's answer into resp.
func (s *Server) proposeInto(ctx context.Context, o op, req message, resp message, hdr **pb.ResponseHeader) error {
	cmd, err := encodeMsg(o, req)
	if err != nil {
		return err
	}
	if err := checkRequest(o, req, len(cmd)); err != nil {
		return err
	}
	out, err := s.node.propose(ctx, cmd)
	if err != nil {
		return toGRPC(err)
	}
	if out != nil {
		b, err := out.Marshal()
		if err != nil {
			return err
		}
		if err := resp.Unmarshal(b); err != nil {
			return err
		}
	}
	s.stamp(hdr)
	return nil
}

func (s *Server) stamp(h **pb.ResponseHeader) {
	if *h == nil {
		*h = &pb.ResponseHeader{Revision: s.node.fsm.store.Rev()}
	}
	s.stampNoRev(*h)
}

func (s *Server) stampNoRev(h *pb.ResponseHeader) {
	h.ClusterId = s.node.fsm.cluster()
	h.MemberId = s.node.id
	h.RaftTerm = s.node.raft.CurrentTerm()
}

// toGRPC maps our errors to the status etcd would send. A forwarded call
// whose answer was lost (its fate unknown) is etcd's "request timed out"
// when it ran out of time and "leader changed" when the connection to the
// leader was cut; both are Unavailable, which etcd's clients retry.
func toGRPC(err error) error {
	if err == nil {
		return nil
	}
	if _, ok := status.FromError(err); ok {
		return err
	}
	var lost *dcs.LostCallError
	switch {
	case errors.As(err, &lost) && lost.Timeout():
		return rpctypes.ErrGRPCTimeout
	case errors.As(err, &lost):
		return rpctypes.ErrGRPCLeaderChanged
	case errors.Is(err, dcs.ErrNotLeader):
		return rpctypes.ErrGRPCNoLeader
	case errors.Is(err, context.DeadlineExceeded):
		return rpctypes.ErrGRPCTimeout
	case errors.Is(err, context.Canceled):
		return status.Error(codes.Canceled, "context canceled")
	}
	return status.Error(codes.Unknown, err.Error())
}

type leaseServer struct {
	pb.UnimplementedLeaseServer
	s *Server
}

func (l *leaseServer) LeaseGrant(ctx context.Context, req *pb.LeaseGrantRequest) (*pb.LeaseGrantResponse, error) {
	for try := 0; ; try++ {
		r := *req
		if r.ID == 0 {
			r.ID = randomID()
		}
		raiseTTL(&r, l.s.cfg.HeartbeatTimeout)
		resp := &pb.LeaseGrantResponse{}
		err := l.s.proposeInto(ctx, opLeaseGrant, &r, resp, &resp.Header)
		if req.ID == 0 && try < 3 && errors.Is(err, mvcc.ErrLeaseExists) {
			continue // a random ID collided; draw another
		}
		return resp, err
	}
}

func (l *leaseServer) LeaseRevoke(ctx context.Context, req *pb.LeaseRevokeRequest) (*pb.LeaseRevokeResponse, error) {
	resp := &pb.LeaseRevokeResponse{}
	if _, err := l.s.node.propose(ctx, encodeInts(opLeaseRevoke, req.ID)); err != nil {
		return nil, toGRPC(err)
	}
	l.s.stamp(&resp.Header)
	return resp, nil
}

// LeaseKeepAlive answers each request with one response and ends when the
// client ends its side, as etcd does (the JSON gateway relies on that to
// finish a keepalive POST). Each keepalive is a replicated refresh.
func (l *leaseServer) LeaseKeepAlive(stream pb.Lease_LeaseKeepAliveServer) error {
	for {
		req, err := stream.Recv()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		out, err := l.s.node.propose(stream.Context(), encodeInts(opLeaseRefresh, req.ID, 0))
		if err != nil {
			return toGRPC(err)
		}
		resp, _ := out.(*pb.LeaseKeepAliveResponse)
		if resp == nil {
			resp = &pb.LeaseKeepAliveResponse{ID: req.ID}
		}
		l.s.stamp(&resp.Header)
		if err := stream.Send(resp); err != nil {
			return err
		}
	}
}

func (l *leaseServer) LeaseTimeToLive(ctx context.Context, req *pb.LeaseTimeToLiveRequest) (*pb.LeaseTimeToLiveResponse, error) {
	resp := &pb.LeaseTimeToLiveResponse{}
	if err := l.s.node.leaderRead(ctx, readLeaseTTL, req, resp); err != nil {
		return nil, toGRPC(err)
	}
	l.s.stamp(&resp.Header)
	return resp, nil
}

func (l *leaseServer) LeaseLeases(ctx context.Context, req *pb.LeaseLeasesRequest) (*pb.LeaseLeasesResponse, error) {
	resp := &pb.LeaseLeasesResponse{}
	if err := l.s.node.leaderRead(ctx, readLeases, req, resp); err != nil {
		return nil, toGRPC(err)
	}
	l.s.stamp(&resp.Header)
	return resp, nil
}
