package database

import (
	"database/sql/driver"
	"errors"
	"fmt"
	"net"
	"syscall"
	"testing"

	"github.com/lib/pq"
)

// An outage (answered 503, retried with the same key) is told apart from a
// request or a bug that is wrong every time (422, 500).
func TestIsUnavailable(t *testing.T) {
	for _, tc := range []struct {
		name string
		err  error
		want bool
	}{
		{"OKBadConnectionDuringCommit", fmt.Errorf("commit: %w", driver.ErrBadConn), true},
		{"OKSocketGone", &net.OpError{Op: "dial", Net: "unix", Err: syscall.ENOENT}, true},
		{"OKRefused", fmt.Errorf("connect: %w", syscall.ECONNREFUSED), true},
		{"OKStartingUp", &pq.Error{Code: "57P03", Message: "the database system is starting up"}, true},
		{"OKCrashShutdown", &pq.Error{Code: "57P02"}, true},
		{"OKAdminShutdown", fmt.Errorf("select: %w", &pq.Error{Code: "57P01"}), true},
		{"OKConnectionFailure", &pq.Error{Code: "08006"}, true},
		{"OKTooManyConnections", &pq.Error{Code: "53300"}, true},
		{"ErrUniqueViolation", &pq.Error{Code: CodeUniqueViolation}, false},
		{"ErrSerializationFailure", &pq.Error{Code: CodeSerializationFailure}, false},
		{"ErrSyntax", &pq.Error{Code: "42601"}, false},
		{"ErrPlain", errors.New("template: no such field"), false},
		{"ErrNil", nil, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := IsUnavailable(tc.err); got != tc.want {
				t.Fatalf("IsUnavailable(%v) = %v, want %v", tc.err, got, tc.want)
			}
		})
	}
}

// Resource refusals are named, each by its SQLSTATE, so the HTTP layer can
// answer 503 with a stable code instead of 500.
func TestRefusal(t *testing.T) {
	for _, tc := range []struct {
		name string
		err  error
		want string
	}{
		{"OKDiskFull", fmt.Errorf("insert: %w", &pq.Error{Code: "53100", Message: "could not extend file"}), RefusalDiskFull},
		{"OKOutOfMemory", &pq.Error{Code: "53200"}, RefusalOutOfMemory},
		{"OKTooManyConnections", &pq.Error{Code: "53300"}, RefusalTooManyConnections},
		{"OKReadOnly", fmt.Errorf("commit: %w", &pq.Error{Code: "25006"}), RefusalReadOnly},
		{"ErrConfigurationLimit", &pq.Error{Code: "53400"}, ""},
		{"ErrUniqueViolation", &pq.Error{Code: CodeUniqueViolation}, ""},
		{"ErrPlain", errors.New("disk full"), ""},
		{"ErrNil", nil, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := Refusal(tc.err); got != tc.want {
				t.Fatalf("Refusal(%v) = %q, want %q", tc.err, got, tc.want)
			}
		})
	}
}
