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
//   - a directory holding an MNIST-style IDX set (train-images-idx3-ubyte[.gz], t10k-...),
//     such as MNIST or Fashion-MNIST (grey images become RGB);
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
		set := Synthetic(n, 10, size, 1)
		if split == "test" {
			set = Synthetic(max(10, n/5), 10, size, 2)
		}
		if opt.PerClass > 0 {
			set = set.Subset(set.PerClass(opt.PerClass))
		}
		return set, nil
	}
	st, err := os.Stat(src)
	if err != nil {
		return nil, fmt.Errorf("data set: %w", err)
	}
	if !st.IsDir() {
		return nil, fmt.Errorf("data set %s: not a directory", src)
	}
	var bin *Set
	switch {
	case IsCIFAR10Binary(src):
		bin, err = LoadCIFAR10Binary(src, split == "train")
	case IsIDX(src):
		bin, err = LoadIDX(src, split == "train")
	}
	if err != nil {
		return nil, err
	}
	if bin != nil {
		if opt.PerClass > 0 {
			bin = bin.Subset(bin.PerClass(opt.PerClass))
		}
		if opt.Size > 0 && (bin.H != opt.Size || bin.W != opt.Size) {
			r := &Set{Classes: bin.Classes, H: opt.Size, W: opt.Size, Labels: bin.Labels, Paths: bin.Paths}
			for i := range bin.Len() {
				r.Pixels = append(r.Pixels, Resize(bin.Image(i), bin.H, bin.W, opt.Size, opt.Size)...)
			}
			bin = r
		}
		return bin, nil
	}
	dir := filepath.Join(src, split)
	if _, err := os.Stat(dir); err != nil {
		return nil, fmt.Errorf("data set %s has no %s/ folder: %w", src, split, os.ErrNotExist)
	}
	return LoadFolder(dir, opt)
}
