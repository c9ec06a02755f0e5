package fakeruntime

import "github.com/kubeyard/kubeyard/internal/engine"

var _ engine.Runtime = (*Runtime)(nil)
