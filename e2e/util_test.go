package e2e

import (
	"fmt"
	"net"
	"strconv"
	"testing"
)

func errorf(format string, args ...any) error { return fmt.Errorf(format, args...) }

func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
}
