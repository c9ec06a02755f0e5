package engine

import (
	"context"
	"fmt"
	"strings"
	"testing"
)

// TestSecondRotationStartIsAlreadyRotating: a second start of an IP
// rotation is refused as already rotating, also while the rotation's own
// node pool recreation runs (not as an incompatible operation, which
// would depend on the moment).
func TestSecondRotationStartIsAlreadyRotating(t *testing.T) {
	g := newRig(t)
	ctx := context.Background()
	g.createCluster("c1", 2)
	g.hold("RemoveNode")
	g.wait(g.e.StartIPRotation(ctx, project, zone, "c1", false))
	g.eventually("the node pool recreation runs", func() error {
		if r := g.cluster("c1"); r.Operation == "" {
			return fmt.Errorf("no operation on c1")
		}
		return nil
	})
	_, err := g.e.StartIPRotation(ctx, project, zone, "c1", false)
	if err == nil || !strings.Contains(err.Error(), "already rotating its IP") {
		t.Errorf("a second start while the nodes are recreated: %v", err)
	}
	g.release()
	g.settle()
}
