package engine

import (
	"bytes"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// An image loaded into the store is unpacked for containers at once, as
// containerd unpacks what it pulls: a pod's first container does not
// wait for it.
func TestLoadedImagesAreUnpacked(t *testing.T) {
	g := newRig(t)
	g.start()
	img, err := random.Image(1024, 2)
	if err != nil {
		t.Fatal(err)
	}
	var archive bytes.Buffer
	if err := tarball.Write(name.MustParseReference("example.com/team/app:1"), img, &archive); err != nil {
		t.Fatal(err)
	}
	loaded, err := g.e.LoadImages(&archive)
	if err != nil || len(loaded) != 1 {
		t.Fatalf("load: %v %v", loaded, err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for !g.e.snapshots.Unpacked(loaded[0].Digest) {
		if time.Now().After(deadline) {
			t.Fatalf("%s was not unpacked", loaded[0].Name)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
