// Package buildinfo says which build of move is running; every output file records it.
package buildinfo

import (
	"fmt"
	"runtime"
	"runtime/debug"
)

// Version is move's release version.
const Version = "0.1.0-dev"

// String is the version with the Go toolchain and, when known, the source revision.
func String() string {
	s := fmt.Sprintf("move %s (%s %s/%s)", Version, runtime.Version(), runtime.GOOS, runtime.GOARCH)
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, kv := range bi.Settings {
			if kv.Key == "vcs.revision" && len(kv.Value) >= 12 {
				s += " rev " + kv.Value[:12]
			}
		}
	}
	return s
}
