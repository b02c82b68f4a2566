package data

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
)

// CIFAR-10 binary format (https://www.cs.toronto.edu/~kriz/cifar.html): each record is one
// label byte followed by 3072 pixel bytes, the 1024 red, then green, then blue values of a
// 32x32 image in row-major order.
const cifarRecord = 1 + 3*32*32

// CIFAR10Classes are the class names, in label order (batches.meta.txt).
var CIFAR10Classes = []string{"airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"}

// ReadCIFAR10Binary reads records from r (named name in errors) and appends them to s.
func ReadCIFAR10Binary(r io.Reader, name string, s *Set) error {
	br := bufio.NewReader(r)
	rec := make([]byte, cifarRecord)
	for k := 0; ; k++ {
		_, err := io.ReadFull(br, rec)
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("%s: record %d is truncated (a CIFAR-10 record is %d bytes)", name, k, cifarRecord)
		}
		if int(rec[0]) >= len(s.Classes) {
			return fmt.Errorf("%s: record %d has label %d, outside the %d classes", name, k, rec[0], len(s.Classes))
		}
		s.Labels = append(s.Labels, int(rec[0]))
		for i := range 1024 {
			s.Pixels = append(s.Pixels, rec[1+i], rec[1+1024+i], rec[1+2048+i])
		}
		s.Paths = append(s.Paths, fmt.Sprintf("%s#%d", name, k))
	}
}

// LoadCIFAR10Binary reads the training (data_batch_1..5.bin) or test (test_batch.bin) split
// from the extracted cifar-10-batches-bin directory.
func LoadCIFAR10Binary(dir string, train bool) (*Set, error) {
	names := []string{"test_batch.bin"}
	if train {
		names = []string{"data_batch_1.bin", "data_batch_2.bin", "data_batch_3.bin", "data_batch_4.bin", "data_batch_5.bin"}
	}
	s := &Set{Classes: CIFAR10Classes, H: 32, W: 32}
	if b, err := os.ReadFile(filepath.Join(dir, "batches.meta.txt")); err == nil {
		var cl []string
		for _, l := range strings.Split(string(b), "\n") {
			if l = strings.TrimSpace(l); l != "" {
				cl = append(cl, l)
			}
		}
		if len(cl) > 0 {
			s.Classes = cl
		}
	}
	for _, n := range names {
		p := filepath.Join(dir, n)
		f, err := os.Open(p)
		if err != nil {
			return nil, fmt.Errorf("reading CIFAR-10: %w", err)
		}
		err = ReadCIFAR10Binary(f, p, s)
		f.Close()
		if err != nil {
			return nil, err
		}
	}
	return s, nil
}

// IsCIFAR10Binary reports whether dir looks like an extracted cifar-10-batches-bin.
func IsCIFAR10Binary(dir string) bool {
	_, err := os.Stat(filepath.Join(dir, "test_batch.bin"))
	return err == nil
}
