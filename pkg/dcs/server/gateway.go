package server

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/etcdserverpb/gw"
	spb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
)

// compactJSON is etcd 3.4's gateway JSON: proto field names, zero values
// omitted (a failed txn has no "succeeded", a dead lease's keepalive no
// "TTL"), int64 as strings, enums as names, and no whitespace (protojson
// randomises its spacing per binary, so it is compacted).
type compactJSON struct{ *runtime.JSONPb }

func (c compactJSON) Marshal(v any) ([]byte, error) {
	if m, ok := v.(map[string]proto.Message); ok && len(m) == 1 {
		if st, ok := m["error"].(*spb.Status); ok {
			return streamError(st)
		}
	}
	b, err := c.JSONPb.Marshal(v)
	if err != nil {
		return nil, err
	}
	var out bytes.Buffer
	if err := json.Compact(&out, b); err != nil {
		return b, nil
	}
	return out.Bytes(), nil
}

// streamError is the error that ends a stream (a lease keepalive, a
// watch) in etcd 3.4's shape, grpc-gateway v1's:
// {"error":{"grpc_code":14,"http_code":503,"message":...,"http_status":...}}.
// Patroni 3.0.2 reads grpc_code from it and takes any other shape for an
// Unknown error, which it does not retry: a keepalive answered "leader
// changed" by a member that lost its leadership demoted its primary at
// once.
func streamError(st *spb.Status) ([]byte, error) {
	code := runtime.HTTPStatusFromCode(codes.Code(st.GetCode()))
	type chunk struct {
		GRPCCode   int32  `json:"grpc_code"`
		HTTPCode   int    `json:"http_code"`
		Message    string `json:"message"`
		HTTPStatus string `json:"http_status"`
	}
	return json.Marshal(struct {
		Error chunk `json:"error"`
	}{chunk{st.GetCode(), code, st.GetMessage(), http.StatusText(code)}})
}

// newGateway builds the JSON gateway over conn, a client connection to our
// own gRPC server (the in-process handlers cannot serve streams).
func newGateway(ctx context.Context, conn *grpc.ClientConn) (http.Handler, error) {
	m := compactJSON{&runtime.JSONPb{
		MarshalOptions:   protojson.MarshalOptions{UseProtoNames: true, EmitUnpopulated: false},
		UnmarshalOptions: protojson.UnmarshalOptions{DiscardUnknown: true},
	}}
	mux := runtime.NewServeMux(
		runtime.WithMarshalerOption(runtime.MIMEWildcard, &runtime.HTTPBodyMarshaler{Marshaler: m}),
		runtime.WithErrorHandler(etcdErrorHandler),
		runtime.WithRoutingErrorHandler(func(_ context.Context, _ *runtime.ServeMux, _ runtime.Marshaler, w http.ResponseWriter, _ *http.Request, code int) {
			// As etcd 3.4: plain-text routing errors.
			if code == http.StatusNotImplemented {
				code = http.StatusMethodNotAllowed
			}
			http.Error(w, http.StatusText(code), code)
		}),
	)
	for _, reg := range []func(context.Context, *runtime.ServeMux, *grpc.ClientConn) error{
		gw.RegisterKVHandler, gw.RegisterWatchHandler, gw.RegisterLeaseHandler,
		gw.RegisterClusterHandler, gw.RegisterMaintenanceHandler, gw.RegisterAuthHandler,
	} {
		if err := reg(ctx, mux, conn); err != nil {
			return nil, err
		}
	}
	return mux, nil
}

// etcdErrorHandler writes errors as etcd 3.4 does:
// {"error":msg,"message":msg,"code":N}. Patroni 3.x matches the "error"
// string to tell, say, a missing lease from any other NotFound.
func etcdErrorHandler(ctx context.Context, _ *runtime.ServeMux, _ runtime.Marshaler, w http.ResponseWriter, _ *http.Request, err error) {
	s := status.Convert(err)
	body, _ := json.Marshal(struct {
		Error   string `json:"error"`
		Message string `json:"message"`
		Code    int    `json:"code"`
	}{s.Message(), s.Message(), int(s.Code())})
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(runtime.HTTPStatusFromCode(s.Code()))
	w.Write(body)
}

// httpHandler serves /version, /health and the gateway under /v3, with
// /v3beta and /v3alpha as aliases.
func (s *Server) httpHandler(gateway http.Handler) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/version", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`{"etcdserver":"` + ServerVersion + `","etcdcluster":"` + ClusterVersion + `"}`))
	})
	mux.HandleFunc("/health", s.health)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		for _, p := range []string{"/v3beta/", "/v3alpha/"} {
			if strings.HasPrefix(r.URL.Path, p) {
				r.URL.Path = "/v3/" + strings.TrimPrefix(r.URL.Path, p)
			}
		}
		if !strings.HasPrefix(r.URL.Path, "/v3/") {
			http.NotFound(w, r)
			return
		}
		if s.node.turnsAway() && needsLeader(r.URL.Path) && turnAway(w, r) {
			return
		}
		if r.URL.Path != "/v3/watch" {
			// The gateway decodes a whole body before gRPC's own size
			// limit sees it: bound it first (base64 makes a request of
			// etcd's 1.5 MiB about 2 MiB of JSON).
			r.Body = http.MaxBytesReader(w, r.Body, maxGatewayBody)
		}
		if r.URL.Path == "/v3/watch" && r.ContentLength > 0 && r.ContentLength < 1<<20 && !validJSONStream(w, r) {
			return
		}
		if r.URL.Path == "/v3/watch" && r.ContentLength < 0 && r.ProtoMajor == 1 {
			// A chunked watch body may carry more requests later: answer
			// while it is still arriving.
			http.NewResponseController(w).EnableFullDuplex()
		}
		gateway.ServeHTTP(w, r)
	})
	return mux
}

// maxGatewayBody bounds the JSON body of a gateway request other than a
// watch stream's.
const maxGatewayBody = 4 << 20

// health answers like etcd: healthy when a linearizable read completes
// within a second, which needs a leader and a quorum.
func (s *Server) health(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), time.Second)
	defer cancel()
	err := s.node.leaderRead(ctx, readRange, &pb.RangeRequest{Key: []byte("health")}, &pb.RangeResponse{})
	w.Header().Set("Content-Type", "application/json")
	if err != nil {
		w.WriteHeader(http.StatusServiceUnavailable)
		w.Write([]byte(`{"health":"false"}`))
		return
	}
	w.Write([]byte(`{"health":"true"}`))
}

// validJSONStream checks a watch body of known length before the gateway
// sees it: the gateway would otherwise wait forever for a create request
// it could not decode. etcd answers 500 with the decoder's message.
func validJSONStream(w http.ResponseWriter, r *http.Request) bool {
	body, err := io.ReadAll(io.LimitReader(r.Body, r.ContentLength))
	r.Body = io.NopCloser(bytes.NewReader(body))
	if err != nil {
		return true
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	for {
		var v json.RawMessage
		err := dec.Decode(&v)
		if err == io.EOF {
			return true
		}
		if err != nil {
			if errors.Is(err, io.ErrUnexpectedEOF) {
				err = io.ErrUnexpectedEOF
			}
			etcdErrorHandler(r.Context(), nil, nil, w, r, status.Error(codes.Unknown, err.Error()))
			return false
		}
	}
}
