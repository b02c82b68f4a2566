package data

import (
	"bytes"
	"encoding/binary"
	"hash/crc32"
	"image"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// PNGBomb returns a small PNG whose header declares w x h pixels.
func PNGBomb(t testing.TB, w, h int) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := png.Encode(&buf, image.NewRGBA(image.Rect(0, 0, 1, 1))); err != nil {
		t.Fatal(err)
	}
	b := buf.Bytes()
	// The IHDR chunk follows the 8-byte signature: length(4) "IHDR"(4) width(4) height(4) ... crc(4).
	binary.BigEndian.PutUint32(b[16:], uint32(w))
	binary.BigEndian.PutUint32(b[20:], uint32(h))
	binary.BigEndian.PutUint32(b[29:], crc32.ChecksumIEEE(b[12:29]))
	return b
}

// A small file that declares a huge image is refused from its header, before any pixel is
// allocated; a device or a link to one is not read (issue 16, item 2).
func TestHostileImages(t *testing.T) {
	dir := t.TempDir()
	bomb := filepath.Join(dir, "bomb.png")
	b := PNGBomb(t, 60000, 60000)
	if err := os.WriteFile(bomb, b, 0o644); err != nil {
		t.Fatal(err)
	}
	_, _, _, err := ReadImage(bomb, 0)
	if err == nil || !strings.Contains(err.Error(), "declares 60000x60000 pixels") {
		t.Fatalf("a %d-byte PNG declaring 60000x60000: %v", len(b), err)
	}
	// In a data folder too.
	cls := filepath.Join(dir, "set", "train", "cat")
	os.MkdirAll(cls, 0o755)
	os.WriteFile(filepath.Join(cls, "a.png"), b, 0o644)
	if _, err := Open(filepath.Join(dir, "set"), "train", FolderOptions{}); err == nil || !strings.Contains(err.Error(), "declares 60000x60000") {
		t.Fatalf("a data folder holding the bomb: %v", err)
	}
	link := filepath.Join(dir, "zero.png")
	if err := os.Symlink("/dev/zero", link); err != nil {
		t.Fatal(err)
	}
	if _, _, _, err := ReadImage(link, 0); err == nil || !strings.Contains(err.Error(), "not a regular file") {
		t.Fatalf("a link to /dev/zero: %v", err)
	}
	if _, _, _, err := ReadImage(filepath.Join(dir, "set"), 0); err == nil || !strings.Contains(err.Error(), "not a regular file") {
		t.Fatalf("a directory: %v", err)
	}
}
