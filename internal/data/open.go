package data

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// Open loads one split ("train" or "test") of a data set named by src:
//   - "synthetic" or "synthetic:N": the generated set (N training images, N/5 test; 10 classes,
//     32x32), with different seeds for the two splits;
//   - a directory holding CIFAR-10 binary batches (test_batch.bin, data_batch_*.bin);
//   - an image folder root holding train/<class>/... and test/<class>/....
//
// It returns os.ErrNotExist (wrapped) when the split is absent from a folder root.
func Open(src, split string, opt FolderOptions) (*Set, error) {
	if split != "train" && split != "test" {
		return nil, fmt.Errorf("unknown split %q", split)
	}
	if src == "synthetic" || strings.HasPrefix(src, "synthetic:") {
		n := 2000
		if s, ok := strings.CutPrefix(src, "synthetic:"); ok {
			v, err := strconv.Atoi(s)
			if err != nil || v < 10 {
				return nil, fmt.Errorf("synthetic set size %q: want a number of at least 10", s)
			}
			n = v
		}
		size := 32
		if opt.Size > 0 {
			size = opt.Size
		}
		if split == "test" {
			return Synthetic(max(10, n/5), 10, size, 2), nil
		}
		return Synthetic(n, 10, size, 1), nil
	}
	st, err := os.Stat(src)
	if err != nil {
		return nil, fmt.Errorf("data set: %w", err)
	}
	if !st.IsDir() {
		return nil, fmt.Errorf("data set %s: not a directory", src)
	}
	if IsCIFAR10Binary(src) {
		s, err := LoadCIFAR10Binary(src, split == "train")
		if err != nil {
			return nil, err
		}
		if opt.PerClass > 0 {
			s = s.Subset(s.PerClass(opt.PerClass))
		}
		return s, nil
	}
	dir := filepath.Join(src, split)
	if _, err := os.Stat(dir); err != nil {
		return nil, fmt.Errorf("data set %s has no %s/ folder: %w", src, split, os.ErrNotExist)
	}
	return LoadFolder(dir, opt)
}
