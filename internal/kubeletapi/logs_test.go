package kubeletapi

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kubeyard/kubeyard/internal/podruntime"
)

// A CRI log as the shim writes it: streams apart, a line in two parts.
func writeLog(t *testing.T, lines ...string) podruntime.Container {
	t.Helper()
	path := filepath.Join(t.TempDir(), "0.log")
	if err := os.WriteFile(path, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return podruntime.Container{LogPath: path}
}

func TestLogOptions(t *testing.T) {
	now := time.Now().UTC()
	at := func(ago time.Duration) string { return now.Add(-ago).Format(time.RFC3339Nano) }
	c := writeLog(t,
		at(time.Hour)+" stdout F started",
		at(time.Minute)+" stderr F a warning",
		at(30*time.Second)+" stdout P a long ",
		at(30*time.Second)+" stdout F line",
		at(time.Second)+" stdout F last",
	)
	read := func(o logOptions) (string, string) {
		var out, errOut bytes.Buffer
		if err := followLog(context.Background(), c, o, func() bool { return false }, &out, &errOut); err != nil {
			t.Fatal(err)
		}
		return out.String(), errOut.String()
	}
	if out, errOut := read(logOptions{tail: -1}); out != "started\na long line\nlast\n" || errOut != "a warning\n" {
		t.Errorf("all: %q %q", out, errOut)
	}
	if out, errOut := read(logOptions{tail: 2}); out != "a long line\nlast\n" || errOut != "" {
		t.Errorf("tailLines=2 (a line in two parts is one line): %q %q", out, errOut)
	}
	if out, _ := read(logOptions{tail: -1, since: now.Add(-45 * time.Second)}); out != "a long line\nlast\n" {
		t.Errorf("sinceSeconds=45: %q", out)
	}
	if out, errOut := read(logOptions{tail: -1, limit: 10}); out != "started\n" || errOut != "a " {
		t.Errorf("limitBytes=10, both streams counted: %q %q", out, errOut)
	}
	if out, _ := read(logOptions{tail: 1, timestamps: true}); out != at(time.Second)+" last\n" {
		t.Errorf("timestamps: %q", out)
	}
}

// Following goes on while the container runs, and ends with it.
func TestLogFollow(t *testing.T) {
	c := writeLog(t, time.Now().UTC().Format(time.RFC3339Nano)+" stdout F first")
	running := make(chan struct{})
	alive := func() bool {
		select {
		case <-running:
			return false
		default:
			return true
		}
	}
	var out bytes.Buffer // read once followLog has returned
	done := make(chan error)
	go func() {
		done <- followLog(context.Background(), c, logOptions{follow: true, tail: -1}, alive, &out, &out)
	}()
	time.Sleep(200 * time.Millisecond)
	f, _ := os.OpenFile(c.LogPath, os.O_APPEND|os.O_WRONLY, 0)
	f.WriteString(time.Now().UTC().Format(time.RFC3339Nano) + " stdout F second\n")
	f.Close()
	time.Sleep(300 * time.Millisecond)
	close(running)
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("following did not end with the container")
	}
	if got := out.String(); got != "first\nsecond\n" {
		t.Errorf("followed: %q", got)
	}
}
