package data

import (
	"image"
	"image/png"
	"io"

	"move/internal/atomicfile"
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
