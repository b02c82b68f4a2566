//go:build !unix

package atomicfile

import "io/fs"

func readUmask() fs.FileMode { return 0o022 }
