package loadbalancer

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// eventuallyGet waits until a request through addr answers want.
func eventuallyGet(t *testing.T, addr, want string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		body, err := get(addr)
		if err == nil && body == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("through %s: got %q, %v; want %q", addr, body, err, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestFollowAppliesTheConfigFolder(t *testing.T) {
	_, one := backend(t, "one", true)
	_, two := backend(t, "two", true)
	dir := follow(t)

	addr := frontendAddr(t)
	// Each step has its own 5 s: the suite runs packages side by side.
	wait := func() context.Context {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		t.Cleanup(cancel)
		return ctx
	}
	if err := WriteFrontend(dir, "c1", Frontend{Addr: addr, Backends: []Backend{one}}); err != nil {
		t.Fatal(err)
	}
	if err := WaitListening(wait(), addr, true); err != nil {
		t.Fatal(err)
	}
	eventuallyGet(t, addr, "one")

	// A changed backend list applies without closing the frontend.
	if err := WriteFrontend(dir, "c1", Frontend{Addr: addr, Backends: []Backend{two}}); err != nil {
		t.Fatal(err)
	}
	eventuallyGet(t, addr, "two")

	// A file that does not parse leaves the frontend as it was.
	if err := os.WriteFile(filepath.Join(dir, "c1.json"), []byte("{not json"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := WaitRefused(wait(), dir, "c1"); err != nil {
		t.Fatal(err)
	}
	if body, err := get(addr); err != nil || body != "two" {
		t.Fatalf("after a file that does not parse: %q %v", body, err)
	}
	// Mended, it applies again.
	if err := WriteFrontend(dir, "c1", Frontend{Addr: addr, Backends: []Backend{one}}); err != nil {
		t.Fatal(err)
	}
	if err := WaitApplied(wait(), dir, "c1"); err != nil {
		t.Fatal(err)
	}
	eventuallyGet(t, addr, "one")

	if err := RemoveFrontend(dir, "c1"); err != nil {
		t.Fatal(err)
	}
	if err := WaitListening(wait(), addr, false); err != nil {
		t.Fatal(err)
	}
}

// TestFollowAddressMovesBetweenFiles: an IP rotation moves the endpoint's
// address into a second file and gives the first a new one, in one step;
// both must serve.
func TestFollowAddressMovesBetweenFiles(t *testing.T) {
	_, one := backend(t, "one", true)
	dir := follow(t)

	oldAddr, newAddr := frontendAddr(t), frontendAddr(t)
	if err := WriteFrontend(dir, "c1", Frontend{Addr: oldAddr, Backends: []Backend{one}}); err != nil {
		t.Fatal(err)
	}
	eventuallyGet(t, oldAddr, "one")
	// Written together, as between two rounds of the follower.
	if err := WriteFrontend(dir, "c1-old-endpoint", Frontend{Addr: oldAddr, Backends: []Backend{one}}); err != nil {
		t.Fatal(err)
	}
	if err := WriteFrontend(dir, "c1", Frontend{Addr: newAddr, Backends: []Backend{one}}); err != nil {
		t.Fatal(err)
	}
	// Once the follower has applied both files, both addresses serve.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, name := range []string{"c1", "c1-old-endpoint"} {
		if err := WaitApplied(ctx, dir, name); err != nil {
			t.Fatal(err)
		}
	}
	for _, addr := range []string{newAddr, oldAddr} {
		if body, err := get(addr); err != nil || body != "one" {
			t.Fatalf("through %s: %q %v", addr, body, err)
		}
	}
}

// follow runs a load balancer that follows a new folder until the test ends.
func follow(t *testing.T) string {
	dir := t.TempDir()
	followEvery(t, dir, 20*time.Millisecond)
	return dir
}

func followEvery(t *testing.T, dir string, interval time.Duration) {
	lb := New(Config{CheckInterval: 50 * time.Millisecond})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- lb.Follow(ctx, dir, interval) }()
	t.Cleanup(func() { cancel(); <-done })
}

// servesOnceWritten writes a frontend to b into dir, and waits until it
// is applied and answers want.
func servesOnceWritten(t *testing.T, dir string, b Backend, want string) {
	t.Helper()
	addr := frontendAddr(t)
	if err := WriteFrontend(dir, "c1", Frontend{Addr: addr, Backends: []Backend{b}}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := WaitApplied(ctx, dir, "c1"); err != nil {
		t.Fatal(err)
	}
	eventuallyGet(t, addr, want)
}

// TestFollowAppliesChangesAsTheyAreWritten: the folder is watched, not
// read every interval; an hour's interval still applies a change at once.
func TestFollowAppliesChangesAsTheyAreWritten(t *testing.T) {
	_, one := backend(t, "one", true)
	dir := t.TempDir()
	followEvery(t, dir, time.Hour)
	time.Sleep(100 * time.Millisecond) // the first round has run
	servesOnceWritten(t, dir, one, "one")
}

// TestFollowAFolderMadeAnew: a folder removed and made again is followed
// still.
func TestFollowAFolderMadeAnew(t *testing.T) {
	_, one := backend(t, "one", true)
	dir := filepath.Join(t.TempDir(), "lb")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	followEvery(t, dir, 50*time.Millisecond)
	time.Sleep(100 * time.Millisecond)
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond)
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	servesOnceWritten(t, dir, one, "one")
}

// TestFollowAppliesAllowedSources: a change of admitted sources is live
// once WaitApplied returns.
func TestFollowAppliesAllowedSources(t *testing.T) {
	_, one := backend(t, "one", true)
	dir := follow(t)
	addr := frontendAddr(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, allow := range [][]string{{"127.77.0.0/16"}, {"127.78.0.0/16"}} {
		if err := WriteFrontend(dir, "c1", Frontend{Addr: addr, Backends: []Backend{one}, Allow: allow}); err != nil {
			t.Fatal(err)
		}
		if err := WaitApplied(ctx, dir, "c1"); err != nil {
			t.Fatal(err)
		}
		source := strings.TrimSuffix(allow[0], ".0.0/16") + ".0.9"
		if body, err := getFrom(source, addr); err != nil || body != "one" {
			t.Fatalf("%s admitted by %v: %q %v", source, allow, body, err)
		}
		if _, err := getFrom("127.88.0.9", addr); err == nil {
			t.Fatalf("127.88.0.9 got through %v", allow)
		}
	}
}

// A file read half written (here: empty) is refused, and so is what it
// then becomes if that does not parse either: each content once.
func TestFollowRefusesWhatAFileBecomes(t *testing.T) {
	dir := follow(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, content := range []string{"", "{not json"} {
		if err := os.WriteFile(filepath.Join(dir, "c1.json"), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := WaitRefused(ctx, dir, "c1"); err != nil {
			t.Fatalf("%q: %v", content, err)
		}
	}
}

// Once WaitRemoved returns, a removed frontend no longer listens.
func TestFollowWaitRemoved(t *testing.T) {
	_, one := backend(t, "one", true)
	dir := follow(t)
	addr := frontendAddr(t)
	if err := WriteFrontend(dir, "c1", Frontend{Addr: addr, Backends: []Backend{one}}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := WaitApplied(ctx, dir, "c1"); err != nil {
		t.Fatal(err)
	}
	if err := RemoveFrontend(dir, "c1"); err != nil {
		t.Fatal(err)
	}
	if err := WaitRemoved(ctx, dir, "c1"); err != nil {
		t.Fatal(err)
	}
	if c, err := net.Dial("tcp", addr); err == nil {
		c.Close()
		t.Error("a frontend WaitRemoved waited for still listens")
	}
}
