// Command hello-app is the web server of the hello-app images that
// kubeyard builds for seeds/003 (us-docker.pkg.dev/google-samples/
// containers/gke/hello-app:1.0 and :2.0): on $PORT (8080 by default) it
// answers every request with a greeting, its version and its host name,
// and logs when it starts and each request it serves.
package main

import (
	"fmt"
	"log"
	"net/http"
	"os"
)

// version is set at build time (-ldflags -X main.version=2.0.0).
var version = "1.0.0"

func main() {
	port := os.Getenv("PORT")
	if port == "" {
		port = "8080"
	}
	http.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		log.Printf("Serving request: %s", r.URL.Path)
		host, _ := os.Hostname()
		fmt.Fprintf(w, "Hello, world!\nVersion: %s\nHostname: %s\n", version, host)
	})
	log.Printf("Server listening on port %s", port)
	log.Fatal(http.ListenAndServe(":"+port, nil))
}
