//go:build unix

package atomicfile

import (
	"io/fs"
	"syscall"
)

// readUmask reads the umask by setting it and restoring it at once (at package initialisation,
// before any other goroutine creates files).
func readUmask() fs.FileMode {
	m := syscall.Umask(0)
	syscall.Umask(m)
	return fs.FileMode(m)
}
