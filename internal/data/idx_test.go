package data

import (
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func idxBytes(dims []uint32, body []byte) []byte {
	var b bytes.Buffer
	binary.Write(&b, binary.BigEndian, uint32(0x0800|len(dims)))
	for _, d := range dims {
		binary.Write(&b, binary.BigEndian, d)
	}
	b.Write(body)
	return b.Bytes()
}

func gz(b []byte) []byte {
	var out bytes.Buffer
	w := gzip.NewWriter(&out)
	w.Write(b)
	w.Close()
	return out.Bytes()
}

// A 3-image, 2x2 set written by hand: pixels and labels come back as written, grey as RGB,
// from gzipped and plain files alike.
func TestLoadIDX(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "fashion-mnist")
	os.MkdirAll(dir, 0o755)
	pix := []byte{0, 1, 2, 3, 10, 11, 12, 13, 250, 251, 252, 253}
	os.WriteFile(filepath.Join(dir, "t10k-images-idx3-ubyte.gz"), gz(idxBytes([]uint32{3, 2, 2}, pix)), 0o644)
	os.WriteFile(filepath.Join(dir, "t10k-labels-idx1-ubyte"), idxBytes([]uint32{3}, []byte{9, 0, 4}), 0o644)
	if !IsIDX(dir) {
		t.Fatal("IsIDX = false")
	}
	s, err := Open(dir, "test", FolderOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if s.Len() != 3 || s.H != 2 || s.W != 2 || s.Classes[9] != "ankle-boot" {
		t.Fatalf("got %d images %dx%d classes %v", s.Len(), s.H, s.W, s.Classes)
	}
	if got := s.Image(1); got[0] != 10 || got[1] != 10 || got[2] != 10 || got[11] != 13 {
		t.Errorf("image 1 = %v", got)
	}
	if s.Labels[0] != 9 || s.Labels[2] != 4 {
		t.Errorf("labels %v", s.Labels)
	}
	if _, err := Open(dir, "train", FolderOptions{}); err == nil || !strings.Contains(err.Error(), "train-images") {
		t.Errorf("missing train split: %v", err)
	}
	bad := map[string][]byte{
		"truncated body":   idxBytes([]uint32{3, 2, 2}, pix[:7]),
		"huge declaration": idxBytes([]uint32{4000000000, 28, 28}, nil),
		"wrong magic":      idxBytes([]uint32{3, 4}, pix),
		"short header":     {0, 0, 8},
	}
	for name, b := range bad {
		os.WriteFile(filepath.Join(dir, "t10k-images-idx3-ubyte.gz"), gz(b), 0o644)
		if _, err := Open(dir, "test", FolderOptions{}); err == nil || !strings.Contains(err.Error(), "t10k-images-idx3-ubyte.gz") {
			t.Errorf("%s: err = %v, want an error naming the file", name, err)
		}
	}
	os.WriteFile(filepath.Join(dir, "t10k-images-idx3-ubyte.gz"), gz(idxBytes([]uint32{3, 2, 2}, pix)), 0o644)
	os.WriteFile(filepath.Join(dir, "t10k-labels-idx1-ubyte"), idxBytes([]uint32{3}, []byte{9, 0, 10}), 0o644)
	if _, err := Open(dir, "test", FolderOptions{}); err == nil || !strings.Contains(err.Error(), "label 10") {
		t.Errorf("out-of-range label: %v", err)
	}
}

// The real Fashion-MNIST from Debian's dataset-fashion-mnist, when installed.
func TestFashionMNIST(t *testing.T) {
	const dir = "/usr/share/datasets/fashion-mnist"
	if !IsIDX(dir) {
		t.Skip("dataset-fashion-mnist is not installed")
	}
	s, err := Open(dir, "test", FolderOptions{})
	if err != nil {
		t.Fatal(err)
	}
	counts := make([]int, 10)
	for _, l := range s.Labels {
		counts[l]++
	}
	if s.Len() != 10000 || s.H != 28 || counts[0] != 1000 || counts[9] != 1000 {
		t.Errorf("Fashion-MNIST test: %d images %dx%d, per class %v", s.Len(), s.H, s.W, counts)
	}
}
