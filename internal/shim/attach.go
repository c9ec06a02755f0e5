package shim

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"

	"github.com/creack/pty"
	"golang.org/x/sys/unix"

	"github.com/kubeyard/kubeyard/internal/runc"
)

// The attach socket speaks frames: a type byte, a big-endian length, the
// payload. A client sends its input (frameStdin), terminal sizes
// (frameResize: width, height as two big-endian uint16) and the end of
// its input (frameStdinEnd); the shim sends the container's output
// (frameStdout, frameStderr) until the container ends.
const (
	frameStdin byte = iota
	frameResize
	frameStdinEnd
	frameStdout
	frameStderr
)

func writeFrame(w io.Writer, kind byte, payload []byte) error {
	head := make([]byte, 5)
	head[0] = kind
	binary.BigEndian.PutUint32(head[1:], uint32(len(payload)))
	_, err := w.Write(append(head, payload...))
	return err
}

func readFrame(r io.Reader) (byte, []byte, error) {
	head := make([]byte, 5)
	if _, err := io.ReadFull(r, head); err != nil {
		return 0, nil, err
	}
	n := binary.BigEndian.Uint32(head[1:])
	if n > 1<<20 {
		return 0, nil, fmt.Errorf("shim: a frame of %d bytes", n)
	}
	payload := make([]byte, n)
	_, err := io.ReadFull(r, payload)
	return head[0], payload, err
}

// attacher serves a container's attach socket: clients' input goes to
// the container's standard input (a pipe, or its terminal), its output
// to every client attached.
type attacher struct {
	ln      net.Listener
	mu      sync.Mutex
	clients map[net.Conn]bool
	stdin   io.WriteCloser // nil: the container takes no input
	term    *os.File       // the terminal's master, for sizes
	once    bool           // stdinOnce: the input ends with the first client
}

func listenAttach(path string) (*attacher, error) {
	_ = os.Remove(path)
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("shim: attach socket: %w", err)
	}
	return &attacher{ln: ln, clients: map[net.Conn]bool{}}, nil
}

func (a *attacher) serve() {
	for {
		conn, err := a.ln.Accept()
		if err != nil {
			return
		}
		a.mu.Lock()
		a.clients[conn] = true
		a.mu.Unlock()
		go a.client(conn)
	}
}

func (a *attacher) client(conn net.Conn) {
	defer func() {
		a.mu.Lock()
		delete(a.clients, conn)
		a.mu.Unlock()
		conn.Close()
		if a.once {
			a.closeStdin()
		}
	}()
	for {
		kind, payload, err := readFrame(conn)
		if err != nil {
			return
		}
		a.mu.Lock()
		stdin, term := a.stdin, a.term
		a.mu.Unlock()
		switch {
		case kind == frameStdin && stdin != nil:
			_, _ = stdin.Write(payload)
		case kind == frameStdinEnd && a.term == nil:
			a.closeStdin()
		case kind == frameResize && term != nil && len(payload) == 4:
			_ = pty.Setsize(term, &pty.Winsize{Cols: binary.BigEndian.Uint16(payload), Rows: binary.BigEndian.Uint16(payload[2:])})
		}
	}
}

func (a *attacher) closeStdin() {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.stdin != nil && a.term == nil {
		a.stdin.Close()
		a.stdin = nil
	}
}

// tee sends output to the clients attached.
func (a *attacher) tee(stream string, p []byte) {
	kind := frameStdout
	if stream == "stderr" {
		kind = frameStderr
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	for c := range a.clients {
		if err := writeFrame(c, kind, p); err != nil {
			c.Close()
		}
	}
}

// close ends every attachment: the container has ended.
func (a *attacher) close() {
	a.ln.Close()
	a.mu.Lock()
	defer a.mu.Unlock()
	for c := range a.clients {
		c.Close()
	}
}

// receiveConsole takes the terminal master runc sends to the console
// socket.
func receiveConsole(ln *net.UnixListener) (*os.File, error) {
	conn, err := ln.AcceptUnix()
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	buf, oob := make([]byte, 4096), make([]byte, unix.CmsgSpace(4))
	_, oobn, _, _, err := conn.ReadMsgUnix(buf, oob)
	if err != nil {
		return nil, err
	}
	msgs, err := unix.ParseSocketControlMessage(oob[:oobn])
	if err != nil || len(msgs) != 1 {
		return nil, fmt.Errorf("shim: console socket: no descriptor (%v)", err)
	}
	fds, err := unix.ParseUnixRights(&msgs[0])
	if err != nil || len(fds) != 1 {
		return nil, fmt.Errorf("shim: console socket: %v", err)
	}
	return os.NewFile(uintptr(fds[0]), "console"), nil
}

// Size is a terminal's size.
type Size = runc.Size

// Attach attaches to a container through its shim's socket until the
// container ends or stdin's end is sent (without a terminal), copying in
// and out: stdout and stderr apart, or the terminal's output to stdout.
func Attach(ctx context.Context, socket string, stdin io.Reader, stdout, stderr io.Writer, resize <-chan Size) error {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "unix", socket)
	if err != nil {
		return fmt.Errorf("shim: attach: %w", err)
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	var wmu sync.Mutex
	send := func(kind byte, p []byte) error {
		wmu.Lock()
		defer wmu.Unlock()
		return writeFrame(conn, kind, p)
	}
	if stdin != nil {
		go func() {
			buf := make([]byte, 32<<10)
			for {
				n, err := stdin.Read(buf)
				if n > 0 && send(frameStdin, buf[:n]) != nil {
					return
				}
				if err != nil {
					_ = send(frameStdinEnd, nil)
					return
				}
			}
		}()
	}
	if resize != nil {
		go func() {
			for s := range resize {
				p := make([]byte, 4)
				binary.BigEndian.PutUint16(p, s.Width)
				binary.BigEndian.PutUint16(p[2:], s.Height)
				if send(frameResize, p) != nil {
					return
				}
			}
		}()
	}
	for {
		kind, payload, err := readFrame(conn)
		if errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) || ctx.Err() != nil {
			return nil
		}
		if err != nil {
			return err
		}
		switch {
		case kind == frameStdout && stdout != nil:
			_, _ = stdout.Write(payload)
		case kind == frameStderr && stderr != nil:
			_, _ = stderr.Write(payload)
		}
	}
}
