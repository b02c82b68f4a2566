package data

import (
	"bytes"
	"fmt"
	"image"
	"image/png"
	"io"
	"os"
	"path/filepath"
	"sync"

	"move/internal/atomicfile"
	"move/internal/parallel"
)

// RGBImage wraps 8-bit RGB pixels as an image.Image.
func RGBImage(pix []uint8, h, w int) *image.RGBA {
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for i := range h * w {
		copy(img.Pix[i*4:i*4+3], pix[i*3:i*3+3])
		img.Pix[i*4+3] = 255
	}
	return img
}

// WritePNG writes RGB pixels as a PNG file atomically.
func WritePNG(path string, pix []uint8, h, w int, overwrite bool) error {
	img := RGBImage(pix, h, w)
	return atomicfile.Write(path, overwrite, func(wr io.Writer) error { return png.Encode(wr, img) })
}

// EncodePNG returns RGB pixels as a PNG file's bytes.
func EncodePNG(pix []uint8, h, w int) ([]byte, error) {
	var buf bytes.Buffer
	if err := png.Encode(&buf, RGBImage(pix, h, w)); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// WriteFolder writes s as an image folder dir/<class>/NNNNN.png. The folder is built under a
// temporary name beside dir and renamed into place when complete, so dir either holds the
// whole set or does not exist; an existing dir is an error.
func WriteFolder(s *Set, dir string) error {
	if _, err := os.Stat(dir); err == nil {
		return fmt.Errorf("%s: %w", dir, atomicfile.ErrExists)
	}
	parent := filepath.Dir(filepath.Clean(dir))
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return err
	}
	tmp, err := os.MkdirTemp(parent, "."+filepath.Base(dir)+".tmp-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	for _, c := range s.Classes {
		if err := os.Mkdir(filepath.Join(tmp, c), 0o755); err != nil {
			return err
		}
	}
	var mu sync.Mutex
	var firstErr error
	parallel.For(s.Len(), func(lo, hi, _ int) {
		var buf bytes.Buffer
		for i := lo; i < hi; i++ {
			buf.Reset()
			err := png.Encode(&buf, RGBImage(s.Image(i), s.H, s.W))
			if err == nil {
				err = os.WriteFile(filepath.Join(tmp, s.Classes[s.Labels[i]], fmt.Sprintf("%05d.png", i)), buf.Bytes(), 0o644)
			}
			if err != nil {
				mu.Lock()
				if firstErr == nil {
					firstErr = fmt.Errorf("writing %s: %w", dir, err)
				}
				mu.Unlock()
				return
			}
		}
	})
	if firstErr != nil {
		return firstErr
	}
	if err := os.Chmod(tmp, 0o755); err != nil {
		return err
	}
	return os.Rename(tmp, dir)
}
