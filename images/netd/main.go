// Command netd is the program of the netd DaemonSet kubeyard runs in
// kube-system while a cluster has intra-node visibility on: in its node's
// network namespace (hostNetwork, NET_ADMIN) it keeps the policy routing
// of package netd in place, and takes it away when it is stopped.
//
//	netd         apply, keep applying every 10 s, remove on SIGTERM
//	netd check   exit 0 if the routing is in place (the readiness probe)
package main

import (
	"fmt"
	"log"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/kubeyard/kubeyard/internal/netd"
)

func main() {
	log.SetFlags(log.Ldate | log.Ltime | log.LUTC)
	h, err := netlink.NewHandle()
	if err != nil {
		log.Fatal(err)
	}
	if len(os.Args) > 1 && os.Args[1] == "check" {
		if err := netd.Applied(h); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		return
	}
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM, syscall.SIGINT)
	tick := time.NewTicker(10 * time.Second)
	defer tick.Stop()
	ok := false
	for {
		// Kept applied: a node's uplink can be made again under it.
		if err := netd.Apply(h); err != nil {
			log.Printf("intra-node visibility: %v", err)
			ok = false
		} else if !ok {
			log.Printf("intra-node visibility on: pod traffic takes table %d, to the VPC network", netd.Table)
			ok = true
		}
		select {
		case <-tick.C:
		case sig := <-stop:
			if err := netd.Remove(h); err != nil {
				log.Fatalf("%v: %v", sig, err)
			}
			log.Printf("%v: intra-node visibility off: same-node traffic stays on the node", sig)
			return
		}
	}
}
