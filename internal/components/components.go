// Package components is the multi-call dispatcher: it runs an upstream
// Kubernetes or etcd component in this process, as if its own binary had been
// started. It is the only package that links k8s.io/kubernetes/cmd/..., so
// that nothing else (and no test binary) pays for building the upstream code.
package components

import (
	"context"
	"fmt"
	"os"
	"sort"
	"strings"

	"go.etcd.io/etcd/server/v3/etcdmain"
	"k8s.io/component-base/cli"
	apiserver "k8s.io/kubernetes/cmd/kube-apiserver/app"
	controllermanager "k8s.io/kubernetes/cmd/kube-controller-manager/app"
	proxy "k8s.io/kubernetes/cmd/kube-proxy/app"
	scheduler "k8s.io/kubernetes/cmd/kube-scheduler/app"

	"github.com/kubeyard/kubeyard/internal/pace"
)

// runners maps a component name to the function that runs it with args and
// returns its exit code.
var runners = map[string]func(args []string) int{
	"etcd": func(args []string) int {
		etcdmain.Main(append([]string{"etcd"}, args...))
		return 0
	},
	"kube-apiserver": func(args []string) int {
		cmd := apiserver.NewAPIServerCommand()
		cmd.SetArgs(args)
		return cli.Run(cmd)
	},
	"kube-controller-manager": func(args []string) int {
		cmd := controllermanager.NewControllerManagerCommand()
		cmd.SetArgs(args)
		return cli.Run(cmd)
	},
	"kube-proxy": func(args []string) int {
		cmd := proxy.NewProxyCommand()
		cmd.SetArgs(args)
		return cli.Run(cmd)
	},
	"kube-scheduler": func(args []string) int {
		cmd := scheduler.NewSchedulerCommand()
		cmd.SetArgs(args)
		return cli.Run(cmd)
	},
}

// Names lists the components this binary can run.
func Names() []string {
	names := make([]string, 0, len(runners))
	for n := range runners {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// Run runs component name with args in this process and returns its exit
// code. A process whose spec asks for it (pace.Env) has its Go runtime
// (garbage collector and processors) paced by how busy it is.
func Run(name string, args []string) int {
	run, ok := runners[name]
	if !ok {
		fmt.Fprintf(os.Stderr, "kubeyard: unknown component %q (known: %s)\n", name, strings.Join(Names(), ", "))
		return 2
	}
	if v, ok := os.LookupEnv(pace.Env); ok {
		cfg, err := pace.ParseEnv(v)
		if err != nil {
			fmt.Fprintln(os.Stderr, "kubeyard:", err)
			return 2
		}
		go pace.New(cfg).Run(context.Background())
	}
	return run(args)
}
