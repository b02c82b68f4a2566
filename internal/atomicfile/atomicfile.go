// Package atomicfile writes files so that readers see either the old content or the new,
// never a torn file: write to a temporary file in the same folder, fsync, rename. It refuses
// to replace an existing file unless asked to.
package atomicfile

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// umask is the process's file-creation mask, read once at start (0022 when unknown).
var umask = readUmask()

// ErrExists is returned (wrapped) when the target exists and overwriting was not allowed.
var ErrExists = errors.New("already exists")

// Write creates path with the bytes written by fn. With overwrite false, an existing path is
// an error wrapping ErrExists and nothing is written.
func Write(path string, overwrite bool, fn func(w io.Writer) error) error {
	if !overwrite {
		if _, err := os.Lstat(path); err == nil {
			return fmt.Errorf("%s: %w", path, ErrExists)
		}
	}
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	tmp := f.Name()
	ok := false
	defer func() {
		if !ok {
			f.Close()
			os.Remove(tmp)
		}
	}()
	if err := fn(f); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	// CreateTemp makes the file private (0600); give it the usual mode of a new file.
	if err := f.Chmod(0o644 &^ umask); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if !overwrite {
		// Re-check just before the rename: another writer may have created it meanwhile.
		if _, err := os.Lstat(path); err == nil {
			return fmt.Errorf("%s: %w", path, ErrExists)
		}
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	ok = true
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}

// WriteBytes is Write with a byte slice.
func WriteBytes(path string, overwrite bool, b []byte) error {
	return Write(path, overwrite, func(w io.Writer) error { _, err := w.Write(b); return err })
}
