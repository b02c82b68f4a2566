package atomicfile

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"
)

func TestWrite(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "a.txt")
	if err := WriteBytes(p, false, []byte("one")); err != nil {
		t.Fatal(err)
	}
	if err := WriteBytes(p, false, []byte("two")); !errors.Is(err, ErrExists) {
		t.Fatalf("second write without overwrite: %v", err)
	}
	if b, _ := os.ReadFile(p); string(b) != "one" {
		t.Fatalf("content %q after refused overwrite", b)
	}
	if st, _ := os.Stat(p); st.Mode().Perm() != 0o644&^umask {
		t.Fatalf("mode %v, want %v (a new file's usual mode, not the temporary file's 0600)", st.Mode().Perm(), 0o644&^umask)
	}
	boom := errors.New("boom")
	if err := Write(p, true, func(w io.Writer) error { w.Write([]byte("partial")); return boom }); !errors.Is(err, boom) {
		t.Fatalf("failing writer: %v", err)
	}
	if b, _ := os.ReadFile(p); string(b) != "one" {
		t.Fatalf("content %q after failed write", b)
	}
	if err := WriteBytes(p, true, []byte("three")); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(p); string(b) != "three" {
		t.Fatalf("content %q after overwrite", b)
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 1 {
		t.Fatalf("temporary files left behind: %v", ents)
	}
}
