//go:build !builtin_images

package builtin

import "io/fs"

// Files are the embedded files Images builds from: none in a kubeyard
// built without the tag builtin_images (make build sets it).
func Files() fs.FS { return nil }
