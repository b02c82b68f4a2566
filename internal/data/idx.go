package data

import (
	"bufio"
	"compress/gzip"
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
)

// The IDX format (http://yann.lecun.com/exdb/mnist/) of MNIST and Fashion-MNIST: a big-endian
// magic number 0x0000 08 NN (unsigned bytes, NN dimensions), NN big-endian uint32 sizes, then
// the bytes in row-major order. Files may be gzip-compressed.

// MNISTClasses and FashionMNISTClasses are the class names in label order (folder-safe).
var (
	MNISTClasses        = []string{"0", "1", "2", "3", "4", "5", "6", "7", "8", "9"}
	FashionMNISTClasses = []string{"t-shirt-top", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "ankle-boot"}
)

// maxIDXItems bounds the declared item count: a hostile header cannot make us allocate more
// than the file can hold.
const maxIDXItems = 10_000_000

// idxFile finds base (e.g. "train-images-idx3-ubyte") in dir, gzipped or not, also in the
// "train-images.idx3-ubyte" spelling of the MNIST mirrors.
func idxFile(dir, base string) (string, bool) {
	for _, name := range []string{base + ".gz", base, strings.Replace(base, "-idx", ".idx", 1), strings.Replace(base, "-idx", ".idx", 1) + ".gz"} {
		p := filepath.Join(dir, name)
		if _, err := os.Stat(p); err == nil {
			return p, true
		}
	}
	return "", false
}

// IsIDX reports whether dir holds an MNIST-style IDX data set.
func IsIDX(dir string) bool {
	_, ok := idxFile(dir, "t10k-images-idx3-ubyte")
	return ok
}

func openIDX(path string) (io.ReadCloser, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	if !strings.HasSuffix(path, ".gz") {
		return f, nil
	}
	z, err := gzip.NewReader(bufio.NewReader(f))
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return struct {
		io.Reader
		io.Closer
	}{z, f}, nil
}

// readIDX reads an IDX file of unsigned bytes with the given number of dimensions.
func readIDX(path string, dims int) ([]int, []byte, error) {
	rc, err := openIDX(path)
	if err != nil {
		return nil, nil, err
	}
	defer rc.Close()
	r := bufio.NewReader(rc)
	var magic uint32
	if err := binary.Read(r, binary.BigEndian, &magic); err != nil {
		return nil, nil, fmt.Errorf("%s: truncated IDX header", path)
	}
	if magic != 0x0800|uint32(dims) {
		return nil, nil, fmt.Errorf("%s: not an IDX file of unsigned bytes with %d dimensions (magic %#08x)", path, dims, magic)
	}
	shape := make([]int, dims)
	total := 1
	for i := range shape {
		var d uint32
		if err := binary.Read(r, binary.BigEndian, &d); err != nil {
			return nil, nil, fmt.Errorf("%s: truncated IDX header", path)
		}
		if d == 0 || d > maxIDXItems {
			return nil, nil, fmt.Errorf("%s: dimension %d is %d", path, i, d)
		}
		shape[i] = int(d)
		total *= int(d)
		if total > maxIDXItems*28*28 {
			return nil, nil, fmt.Errorf("%s: declares %v values, too many", path, shape)
		}
	}
	buf := make([]byte, total)
	if _, err := io.ReadFull(r, buf); err != nil {
		return nil, nil, fmt.Errorf("%s: truncated: the header declares %v values", path, shape)
	}
	return shape, buf, nil
}

// LoadIDX reads the training (train-*) or test (t10k-*) split of an MNIST-style data set in
// dir. Grey images become RGB with three equal channels; class names are Fashion-MNIST's when
// the folder's name says fashion, else the digits.
func LoadIDX(dir string, train bool) (*Set, error) {
	prefix := "t10k"
	if train {
		prefix = "train"
	}
	ip, ok := idxFile(dir, prefix+"-images-idx3-ubyte")
	if !ok {
		return nil, fmt.Errorf("%s: no %s-images-idx3-ubyte[.gz]: %w", dir, prefix, os.ErrNotExist)
	}
	lp, ok := idxFile(dir, prefix+"-labels-idx1-ubyte")
	if !ok {
		return nil, fmt.Errorf("%s: no %s-labels-idx1-ubyte[.gz]: %w", dir, prefix, os.ErrNotExist)
	}
	ishape, pix, err := readIDX(ip, 3)
	if err != nil {
		return nil, err
	}
	lshape, labels, err := readIDX(lp, 1)
	if err != nil {
		return nil, err
	}
	if lshape[0] != ishape[0] {
		return nil, fmt.Errorf("%s has %d images but %s has %d labels", ip, ishape[0], lp, lshape[0])
	}
	classes := MNISTClasses
	if strings.Contains(strings.ToLower(dir), "fashion") {
		classes = FashionMNISTClasses
	}
	n, h, w := ishape[0], ishape[1], ishape[2]
	s := &Set{Classes: classes, H: h, W: w, Pixels: make([]uint8, n*h*w*3), Labels: make([]int, n)}
	for i, l := range labels {
		if int(l) >= len(classes) {
			return nil, fmt.Errorf("%s: label %d of item %d is outside the %d classes", lp, l, i, len(classes))
		}
		s.Labels[i] = int(l)
	}
	for i, v := range pix {
		s.Pixels[3*i], s.Pixels[3*i+1], s.Pixels[3*i+2] = v, v, v
	}
	return s, nil
}
