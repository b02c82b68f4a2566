package data

import (
	"bytes"
	"fmt"
	"image"
	"image/draw"
	_ "image/jpeg" // register decoders
	_ "image/png"
	"io"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"

	"move/internal/parallel"
)

// IsImageFile reports whether a file name has an image extension the readers decode.
func IsImageFile(name string) bool {
	switch strings.ToLower(filepath.Ext(name)) {
	case ".png", ".jpg", ".jpeg":
		return true
	}
	return false
}

// ListFolder returns the class names (sorted subdirectory names, as torchvision's
// ImageFolder) and, per class, the sorted image files of dir.
func ListFolder(dir string) ([]string, [][]string, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, nil, fmt.Errorf("reading image folder: %w", err)
	}
	var classes []string
	var files [][]string
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		if _, err := os.Stat(filepath.Join(dir, e.Name(), KeyDataMarker)); err == nil {
			continue // a watermark key's originals or controls, not a class
		}
		sub, err := os.ReadDir(filepath.Join(dir, e.Name()))
		if err != nil {
			return nil, nil, fmt.Errorf("reading image folder: %w", err)
		}
		var fs []string
		for _, f := range sub {
			if !f.IsDir() && IsImageFile(f.Name()) {
				fs = append(fs, filepath.Join(dir, e.Name(), f.Name()))
			}
		}
		sort.Strings(fs)
		classes = append(classes, e.Name())
		files = append(files, fs)
	}
	if len(classes) == 0 {
		return nil, nil, fmt.Errorf("%s: no class subfolders (expected %s/<class>/*.png|jpg)", dir, dir)
	}
	return classes, files, nil
}

// ReadImage decodes a PNG or JPEG file into 8-bit RGB, made size x size when size > 0 (scaled
// bilinearly, and a non-square image centre-cropped: ResizeCrop).
func ReadImage(path string, size int) (pix []uint8, h, w int, err error) {
	b, err := ReadRegular(path, MaxImageFile)
	if err != nil {
		return nil, 0, 0, err
	}
	return DecodeImage(b, path, size)
}

// KeyDataMarker is the file that marks a folder of watermark-key material (originals, control
// styles) inside a watermarked data set: ListFolder does not take it for a class.
const KeyDataMarker = ".move-key-data"

// Budgets for what an untrusted file may make move allocate: an image file, and the pixels an
// image declares in its header (checked before decoding).
const (
	MaxImageFile   = 256 << 20
	MaxImagePixels = 1 << 26 // 8192 x 8192
)

// ReadRegular reads the file at path, refusing anything but a regular file (a device, a FIFO,
// a directory, also behind a symbolic link) and files over limit bytes.
func ReadRegular(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("%s: not a regular file (%s)", path, st.Mode().Type())
	}
	if st.Size() > limit {
		return nil, fmt.Errorf("%s: %d bytes, more than the %d allowed", path, st.Size(), limit)
	}
	b, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("%s: more than the %d bytes allowed", path, limit)
	}
	return b, nil
}

// DecodeImage is ReadImage on bytes already read; name is used in errors. The image's
// declared size is checked against MaxImagePixels before it is decoded.
func DecodeImage(b []byte, name string, size int) ([]uint8, int, int, error) {
	cfg, _, err := image.DecodeConfig(bytes.NewReader(b))
	if err != nil {
		return nil, 0, 0, fmt.Errorf("%s: not a readable PNG or JPEG image: %w", name, err)
	}
	if cfg.Width < 1 || cfg.Height < 1 {
		return nil, 0, 0, fmt.Errorf("%s: empty image", name)
	}
	if int64(cfg.Width)*int64(cfg.Height) > MaxImagePixels {
		return nil, 0, 0, fmt.Errorf("%s: declares %dx%d pixels, more than the %d allowed", name, cfg.Width, cfg.Height, MaxImagePixels)
	}
	if size < 0 || size > 4096 {
		return nil, 0, 0, fmt.Errorf("%s: cannot resize to %d pixels (at most 4096)", name, size)
	}
	img, _, err := image.Decode(bytes.NewReader(b))
	if err != nil {
		return nil, 0, 0, fmt.Errorf("%s: not a readable PNG or JPEG image: %w", name, err)
	}
	r := img.Bounds()
	if r.Dx() < 1 || r.Dy() < 1 {
		return nil, 0, 0, fmt.Errorf("%s: empty image", name)
	}
	rgba, ok := img.(*image.RGBA)
	if !ok || r.Min != (image.Point{}) {
		rgba = image.NewRGBA(image.Rect(0, 0, r.Dx(), r.Dy()))
		draw.Draw(rgba, rgba.Bounds(), img, r.Min, draw.Src)
	}
	h, w := r.Dy(), r.Dx()
	pix := make([]uint8, h*w*3)
	for i := range h * w {
		copy(pix[i*3:i*3+3], rgba.Pix[i*4:i*4+3])
	}
	if size > 0 && (h != size || w != size) {
		pix = ResizeCrop(pix, h, w, size)
		h, w = size, size
	}
	return pix, h, w, nil
}

// ResizeCrop makes an RGB image size x size as torchvision's Resize(size) + CenterCrop(size)
// does: scaled (bilinearly) so that its short side is size, keeping its aspect ratio, then the
// centre size x size cut out. A square image is only scaled.
func ResizeCrop(pix []uint8, h, w, size int) []uint8 {
	if h == w {
		return Resize(pix, h, w, size, size)
	}
	nh, nw := size, size
	if h < w {
		nw = max(size, int(float64(size)*float64(w)/float64(h))) // torchvision truncates
	} else {
		nh = max(size, int(float64(size)*float64(h)/float64(w)))
	}
	scaled := Resize(pix, h, w, nh, nw)
	// CenterCrop's offsets: round((n - size) / 2), rounding half to even as Python does.
	y0, x0 := int(math.RoundToEven(float64(nh-size)/2)), int(math.RoundToEven(float64(nw-size)/2))
	out := make([]uint8, size*size*3)
	for y := range size {
		copy(out[y*size*3:(y+1)*size*3], scaled[((y0+y)*nw+x0)*3:((y0+y)*nw+x0+size)*3])
	}
	return out
}

// Resize scales an RGB image bilinearly (pixel centres aligned, as PIL and torchvision do
// without antialiasing).
func Resize(pix []uint8, h, w, nh, nw int) []uint8 {
	out := make([]uint8, nh*nw*3)
	for y := range nh {
		fy := (float64(y)+0.5)*float64(h)/float64(nh) - 0.5
		y0 := int(max(0, fy))
		y1 := min(y0+1, h-1)
		wy := max(0, fy-float64(y0))
		for x := range nw {
			fx := (float64(x)+0.5)*float64(w)/float64(nw) - 0.5
			x0 := int(max(0, fx))
			x1 := min(x0+1, w-1)
			wx := max(0, fx-float64(x0))
			for c := range 3 {
				p := func(yy, xx int) float64 { return float64(pix[(yy*w+xx)*3+c]) }
				v := (1-wy)*((1-wx)*p(y0, x0)+wx*p(y0, x1)) + wy*((1-wx)*p(y1, x0)+wx*p(y1, x1))
				out[(y*nw+x)*3+c] = uint8(min(255, max(0, v+0.5)))
			}
		}
	}
	return out
}

// FolderOptions controls LoadFolder.
type FolderOptions struct {
	Size     int // make every image Size x Size (ResizeCrop); 0 keeps sizes, which must then agree
	PerClass int // read at most this many images per class (0: all)
	Progress func(done, total int)
}

// LoadFolder reads dir/<class>/*.png|jpg into a Set. An unreadable image or one whose size
// differs from the others (without Size) is an error naming the file.
func LoadFolder(dir string, opt FolderOptions) (*Set, error) {
	classes, files, err := ListFolder(dir)
	if err != nil {
		return nil, err
	}
	var paths []string
	var labels []int
	for c, fs := range files {
		if opt.PerClass > 0 && len(fs) > opt.PerClass {
			fs = fs[:opt.PerClass]
		}
		for _, f := range fs {
			paths = append(paths, f)
			labels = append(labels, c)
		}
	}
	if len(paths) == 0 {
		return nil, fmt.Errorf("%s: no PNG or JPEG images in its class folders", dir)
	}
	first, h, w, err := ReadImage(paths[0], opt.Size)
	if err != nil {
		return nil, err
	}
	n := h * w * 3
	s := &Set{Classes: classes, H: h, W: w, Pixels: make([]uint8, len(paths)*n), Labels: labels, Paths: paths}
	copy(s.Pixels, first)
	var mu sync.Mutex
	var firstErr error
	done := 0
	const chunk = 256
	parallel.For((len(paths)+chunk-1)/chunk, func(lo, hi, _ int) {
		for ci := lo; ci < hi; ci++ {
			for i := ci * chunk; i < min(len(paths), (ci+1)*chunk); i++ {
				pix, ih, iw, err := ReadImage(paths[i], opt.Size)
				if err == nil && (ih != h || iw != w) {
					err = fmt.Errorf("%s: image is %dx%d, the others are %dx%d (pass a size to resize)", paths[i], iw, ih, w, h)
				}
				if err != nil {
					mu.Lock()
					if firstErr == nil {
						firstErr = err
					}
					mu.Unlock()
					return
				}
				copy(s.Pixels[i*n:(i+1)*n], pix)
			}
			if opt.Progress != nil {
				mu.Lock()
				done += min(len(paths), (ci+1)*chunk) - ci*chunk
				opt.Progress(done, len(paths))
				mu.Unlock()
			}
		}
	})
	if firstErr != nil {
		return nil, firstErr
	}
	return s, nil
}
