package server

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"runtime/debug"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// A panic while serving one request must not stop the member: the
// request fails with codes.Internal and the panic is logged once, with
// its stack, so that the bug can be found. The state machine has its own
// last resort (fsm.Apply); these cover the handlers around it.

// errPanic is what a client gets for a request whose handler panicked.
var errPanic = status.Error(codes.Internal, "etcdserver: internal error")

// logPanic logs a recovered panic once with its stack and returns errPanic.
func logPanic(log *slog.Logger, where string, p any) error {
	log.Error("request handler panicked; the request failed with an internal error",
		"where", where, "panic", fmt.Sprint(p), "stack", string(debug.Stack()))
	return errPanic
}

func recoverUnary(log *slog.Logger) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (resp any, err error) {
		defer func() {
			if p := recover(); p != nil {
				resp, err = nil, logPanic(log, info.FullMethod, p)
			}
		}()
		return h(ctx, req)
	}
}

func recoverStream(log *slog.Logger) grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, h grpc.StreamHandler) (err error) {
		defer func() {
			if p := recover(); p != nil {
				err = logPanic(log, info.FullMethod, p)
			}
		}()
		return h(srv, ss)
	}
}

// recoverHTTP answers a panicking gateway request with etcd's JSON error
// and code Internal (HTTP 500) instead of net/http's dropped connection.
func recoverHTTP(log *slog.Logger, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			if p := recover(); p != nil {
				if p == http.ErrAbortHandler {
					panic(p) // net/http's own way to end a response quietly
				}
				etcdErrorHandler(r.Context(), nil, nil, w, r, logPanic(log, r.URL.Path, p))
			}
		}()
		h.ServeHTTP(w, r)
	})
}

// safely runs f, turning a panic into errPanic (for goroutines that a
// handler starts, which the interceptors do not cover).
func safely(log *slog.Logger, where string, f func() error) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = logPanic(log, where, p)
		}
	}()
	return f()
}
