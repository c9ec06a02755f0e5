// Command kubeyard is the engine, its CLI, and (in multi-call mode) every
// control-plane component.
package main

import (
	"github.com/kubeyard/kubeyard/internal/app"
	"github.com/kubeyard/kubeyard/internal/components"
)

func main() { app.Main(components.Run) }
