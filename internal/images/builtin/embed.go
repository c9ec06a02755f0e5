//go:build builtin_images

package builtin

import (
	"embed"
	"io/fs"
)

//go:embed busybox applets hello-app-1.0 hello-app-2.0 netd coredns
var files embed.FS

// Files are the embedded files Images builds from; nil without them.
func Files() fs.FS { return files }
