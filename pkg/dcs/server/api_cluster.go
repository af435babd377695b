package server

import (
	"context"
	"os"
	"path/filepath"

	"github.com/hashicorp/raft"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"

	"github.com/pgherd/pgherd/pkg/dcs"
)

// ServerVersion is what /version and Maintenance.Status report: purely
// numeric (Patroni parses every part as an int) and at least 3.4, so that
// Patroni picks the /v3 prefix.
const (
	ServerVersion  = "3.4.99"
	ClusterVersion = "3.4.0"
)

type clusterServer struct {
	pb.UnimplementedClusterServer
	s *Server
}

// MemberList lists the replicated members with their advertised URLs;
// a member still a nonvoter is reported as a learner.
func (c *clusterServer) MemberList(ctx context.Context, req *pb.MemberListRequest) (*pb.MemberListResponse, error) {
	cf := c.s.node.raft.GetConfiguration()
	if err := cf.Error(); err != nil {
		return nil, toGRPC(mapRaftError(err))
	}
	resp := &pb.MemberListResponse{Header: &pb.ResponseHeader{}}
	c.s.stampNoRev(resp.Header)
	for _, srv := range cf.Configuration().Servers {
		m := &pb.Member{ID: dcs.MemberID(string(srv.ID)), IsLearner: srv.Suffrage != raft.Voter}
		if meta, ok := c.s.node.fsm.member(string(srv.ID)); ok {
			m.Name = meta.Name
			m.PeerURLs = []string{meta.PeerURL}
			m.ClientURLs = []string{meta.ClientURL}
		}
		resp.Members = append(resp.Members, m)
	}
	return resp, nil
}

type maintenanceServer struct {
	pb.UnimplementedMaintenanceServer
	s *Server
}

func (m *maintenanceServer) Status(ctx context.Context, req *pb.StatusRequest) (*pb.StatusResponse, error) {
	n := m.s.node
	resp := &pb.StatusResponse{Header: &pb.ResponseHeader{Revision: n.fsm.store.Rev()}, Version: ServerVersion,
		RaftIndex: n.raft.LastIndex(), RaftTerm: n.raft.CurrentTerm(), RaftAppliedIndex: n.raft.AppliedIndex()}
	m.s.stampNoRev(resp.Header)
	if _, id := n.raft.LeaderWithID(); id != "" {
		resp.Leader = dcs.MemberID(string(id))
	}
	resp.DbSize = dirSize(filepath.Join(n.cfg.DataDir, dcs.WALDir)) + dirSize(filepath.Join(n.cfg.DataDir, "snapshots"))
	// In use: the state machine's accounted size, which the space quota is
	// checked against. (etcd 3.6's DbSizeQuota stays unset: Patroni and
	// etcdctl 3.4 see etcd 3.4's shape.)
	resp.DbSizeInUse = n.fsm.store.Usage()
	if cf := n.raft.GetConfiguration(); cf.Error() == nil {
		for _, s := range cf.Configuration().Servers {
			if string(s.ID) == n.cfg.Name {
				resp.IsLearner = s.Suffrage != raft.Voter
			}
		}
	}
	if resp.Leader == 0 {
		resp.Errors = []string{"etcdserver: no leader"}
	}
	for _, a := range n.fsm.alarmList(pb.AlarmType_NONE).Alarms {
		resp.Errors = append(resp.Errors, a.String()) // as etcd: "memberID:N alarm:NOSPACE "
	}
	return resp, nil
}

func dirSize(dir string) int64 {
	var n int64
	filepath.WalkDir(dir, func(_ string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			if fi, err := d.Info(); err == nil {
				n += fi.Size()
			}
		}
		return nil
	})
	return n
}

// authServer says that authentication is off, as etcd does when it was
// never enabled: Patroni configured with credentials then carries on
// without a token. Every other Auth call is Unimplemented.
type authServer struct {
	pb.UnimplementedAuthServer
}

func (*authServer) Authenticate(context.Context, *pb.AuthenticateRequest) (*pb.AuthenticateResponse, error) {
	return nil, rpctypes.ErrGRPCAuthNotEnabled
}
