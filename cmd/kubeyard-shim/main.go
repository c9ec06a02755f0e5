// Command kubeyard-shim watches over one container (internal/shim). It is
// a binary of its own, apart from kubeyard, so that the process each
// running container costs stays small: kubeyard links the whole control
// plane.
package main

import (
	"os"

	"github.com/kubeyard/kubeyard/internal/shim"
)

func main() { os.Exit(shim.Main(os.Args[1:])) }
