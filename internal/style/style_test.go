package style

import (
	"bytes"
	"math"
	"testing"

	"move/internal/data"
)

// stripes is a stand-in style image: saturated diagonal stripes, nothing like the test images.
func stripes(n int) []uint8 {
	p := make([]uint8, n*n*3)
	for y := range n {
		for x := range n {
			v := 0.5 + 0.5*math.Sin(float64(x+y)*0.9)
			p[(y*n+x)*3] = uint8(255 * v)
			p[(y*n+x)*3+1] = uint8(60 * (1 - v))
			p[(y*n+x)*3+2] = uint8(200 * (1 - v))
		}
	}
	return p
}

func TestTransferMovesTowardsStyle(t *testing.T) {
	set := data.Synthetic(4, 4, 32, 1)
	imgs := make([][]uint8, set.Len())
	for i := range imgs {
		imgs[i] = set.Image(i)
	}
	st := stripes(64)
	opt := Default()
	opt.Steps = 40
	tr, err := New(st, 64, 64, opt)
	if err != nil {
		t.Fatal(err)
	}
	out := tr.Apply(imgs, 32, 32)
	m, err := NewMeter(st, 64, 64, opt, 999)
	if err != nil {
		t.Fatal(err)
	}
	before, after := m.Distance(imgs, 32, 32), m.Distance(out, 32, 32)
	for i := range before {
		t.Logf("image %d: style distance %.4f -> %.4f", i, before[i], after[i])
		if after[i] > before[i]/2 {
			t.Errorf("image %d: style distance %.4f -> %.4f, want at most half", i, before[i], after[i])
		}
	}
	again := tr.Apply(imgs, 32, 32)
	for i := range out {
		if !bytes.Equal(out[i], again[i]) {
			t.Fatal("same transformer, different result")
		}
	}
}

func TestFilters(t *testing.T) {
	// A single bright pixel disappears under the median filter.
	p := make([]uint8, 5*5*3)
	p[(2*5+2)*3] = 255
	if m := Median3(p, 5, 5); m[(2*5+2)*3] != 0 {
		t.Fatal("median kept an isolated pixel")
	}
	// HSV round trip, and keep-colours takes hue from the original, brightness from the styled.
	for _, c := range [][3]uint8{{255, 0, 0}, {10, 200, 30}, {0, 0, 0}, {128, 128, 128}, {20, 40, 250}} {
		h, s, v := rgbToHSV(c[0], c[1], c[2])
		r, g, b := hsvToRGB(h, s, v)
		if r != c[0] || g != c[1] || b != c[2] {
			t.Fatalf("HSV round trip of %v gave %v %v %v", c, r, g, b)
		}
	}
	orig := []uint8{200, 20, 20}   // red
	styled := []uint8{10, 10, 100} // dark blue
	k := KeepColors(orig, styled)
	if !(k[0] > k[1] && k[0] > k[2]) || k[0] != 100 {
		t.Fatalf("keep-colours gave %v, want a red of value 100", k)
	}
}

// Chroma is 0 for grey, 255 for a pure primary, and the mean over the pixels.
func TestChroma(t *testing.T) {
	for _, c := range []struct {
		pix  []uint8
		want float64
	}{
		{[]uint8{7, 7, 7, 200, 200, 200}, 0},
		{[]uint8{255, 0, 0}, 255},
		{[]uint8{10, 40, 25, 0, 0, 0, 90, 90, 30, 5, 5, 5}, (30 + 0 + 60 + 0) / 4.0},
		{nil, 0},
	} {
		if got := Chroma(c.pix); math.Abs(got-c.want) > 1e-12 {
			t.Errorf("Chroma(%v) = %g, want %g", c.pix, got, c.want)
		}
	}
}
