// Package app is the kubeyard command line. Main is the only place that
// exits; Run is the testable entry point. Each command only parses flags and
// calls into the engine or its client.
package app

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// ComponentRunner runs an upstream component in this process (the
// multi-call dispatcher); main injects it so that only the kubeyard binary,
// not this package's tests, links the upstream code.
type ComponentRunner func(name string, args []string) int

// Streams are the standard streams.
type Streams struct {
	In       io.Reader
	Out, Err io.Writer
}

// Main runs kubeyard with the process's arguments and exits.
func Main(components ComponentRunner) {
	if len(os.Args) > 1 && os.Args[1] == "component" {
		// Upstream components parse their own flags; bypass cobra entirely.
		if len(os.Args) < 3 {
			fmt.Fprintln(os.Stderr, "usage: kubeyard component NAME [ARGS...]")
			os.Exit(2)
		}
		os.Exit(components(os.Args[2], os.Args[3:]))
	}
	if err := Run(context.Background(), Streams{os.Stdin, os.Stdout, os.Stderr}, os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "kubeyard:", err)
		var exit exitError
		if errors.As(err, &exit) {
			os.Exit(int(exit))
		}
		os.Exit(1)
	}
}

type exitError int

func (e exitError) Error() string { return fmt.Sprintf("exit status %d", int(e)) }

// Run runs kubeyard with args.
func Run(ctx context.Context, streams Streams, args []string) error {
	// Cobra offers the flags in pflag's global set on every command. The
	// upstream components linked into the binary register theirs there
	// (component-base's --version, which prints Kubernetes' version and
	// exits): they belong to `kubeyard component`, not to kubeyard's own
	// commands, which run in a process of their own.
	pflag.CommandLine = pflag.NewFlagSet(os.Args[0], pflag.ExitOnError)
	root := newRoot(streams)
	root.SetArgs(args)
	root.SetOut(streams.Out)
	root.SetErr(streams.Err)
	return root.ExecuteContext(ctx)
}

// DefaultProject is the project `kubeyard env` selects.
const DefaultProject = "kubeyard-project"

func newRoot(streams Streams) *cobra.Command {
	root := &cobra.Command{
		Use:           "kubeyard",
		Short:         "A self-hosted Kubernetes Engine: the GKE API over real upstream control planes",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.AddCommand(newServe(streams), newEnv(streams), newClock(streams), newVersion(streams),
		newClusters(streams), newUpdate(streams), newCertificateKey(streams), newJoin(streams), newLoadBalancer(streams), newImages(streams), newConsole(streams))
	return root
}
