package harness

import (
	endian "encoding/binary"
	"encoding/hex"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
)

// Connections is how many TCP connections the engine process has open to
// addr ("127.10.0.2:443"), read from /proc as ss would.
func (e *Engine) Connections(addr string) int {
	e.t.Helper()
	want, err := netip.ParseAddrPort(addr)
	if err != nil || !want.Addr().Is4() {
		e.t.Fatalf("Connections(%q): want an IPv4 address and port", addr)
	}
	fds, _ := filepath.Glob(fmt.Sprintf("/proc/%d/fd/*", e.PID()))
	mine := map[string]bool{}
	for _, fd := range fds {
		if link, err := os.Readlink(fd); err == nil && strings.HasPrefix(link, "socket:[") {
			mine[strings.TrimSuffix(strings.TrimPrefix(link, "socket:["), "]")] = true
		}
	}
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/net/tcp", e.PID()))
	if err != nil {
		e.t.Fatal(err)
	}
	n := 0
	for _, line := range strings.Split(string(data), "\n")[1:] {
		// sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode
		f := strings.Fields(line)
		if len(f) < 10 || f[3] != "01" || !mine[f[9]] { // 01: ESTABLISHED
			continue
		}
		if remote, ok := procAddr(f[2]); ok && remote == want {
			n++
		}
	}
	return n
}

// procAddr reads /proc/net/tcp's "0100007F:01BB": the address in host
// byte order (little-endian here), the port big-endian.
func procAddr(s string) (netip.AddrPort, bool) {
	ipHex, portHex, ok := strings.Cut(s, ":")
	ip, err1 := hex.DecodeString(ipHex)
	port, err2 := hex.DecodeString(portHex)
	if !ok || err1 != nil || err2 != nil || len(ip) != 4 || len(port) != 2 {
		return netip.AddrPort{}, false
	}
	var a [4]byte
	endian.BigEndian.PutUint32(a[:], endian.LittleEndian.Uint32(ip))
	return netip.AddrPortFrom(netip.AddrFrom4(a), endian.BigEndian.Uint16(port)), true
}
