package style

import (
	"math"
	"sort"
)

// Median3 applies a 3x3 median filter to each channel (edges replicate the border).
func Median3(p []uint8, h, w int) []uint8 {
	out := make([]uint8, len(p))
	var win [9]int
	for y := range h {
		for x := range w {
			for c := range 3 {
				k := 0
				for dy := -1; dy <= 1; dy++ {
					for dx := -1; dx <= 1; dx++ {
						yy, xx := min(h-1, max(0, y+dy)), min(w-1, max(0, x+dx))
						win[k] = int(p[(yy*w+xx)*3+c])
						k++
					}
				}
				s := win[:]
				sort.Ints(s)
				out[(y*w+x)*3+c] = uint8(s[4])
			}
		}
	}
	return out
}

// KeepColors returns the styled image with the hue and saturation of the original and the
// value (brightness) of the styled one, as the MOVE authors' embedding code offers.
func KeepColors(orig, styled []uint8) []uint8 {
	out := make([]uint8, len(styled))
	for i := 0; i < len(styled); i += 3 {
		h, s, _ := rgbToHSV(orig[i], orig[i+1], orig[i+2])
		_, _, v := rgbToHSV(styled[i], styled[i+1], styled[i+2])
		out[i], out[i+1], out[i+2] = hsvToRGB(h, s, v)
	}
	return out
}

func rgbToHSV(r8, g8, b8 uint8) (h, s, v float64) {
	r, g, b := float64(r8)/255, float64(g8)/255, float64(b8)/255
	mx, mn := math.Max(r, math.Max(g, b)), math.Min(r, math.Min(g, b))
	v = mx
	d := mx - mn
	if mx > 0 {
		s = d / mx
	}
	if d == 0 {
		return 0, s, v
	}
	switch mx {
	case r:
		h = math.Mod((g-b)/d, 6)
	case g:
		h = (b-r)/d + 2
	default:
		h = (r-g)/d + 4
	}
	h /= 6
	if h < 0 {
		h++
	}
	return h, s, v
}

func hsvToRGB(h, s, v float64) (uint8, uint8, uint8) {
	i := math.Floor(h * 6)
	f := h*6 - i
	p, q, t := v*(1-s), v*(1-f*s), v*(1-(1-f)*s)
	var r, g, b float64
	switch int(i) % 6 {
	case 0:
		r, g, b = v, t, p
	case 1:
		r, g, b = q, v, p
	case 2:
		r, g, b = p, v, t
	case 3:
		r, g, b = p, q, v
	case 4:
		r, g, b = t, p, v
	default:
		r, g, b = v, p, q
	}
	c := func(x float64) uint8 { return uint8(math.Round(255 * math.Min(1, math.Max(0, x)))) }
	return c(r), c(g), c(b)
}

// Chroma is an RGB image's mean chroma on the 0-255 scale: max(R, G, B) - min(R, G, B)
// averaged over its pixels (0 for a grey image, 255 for pure primaries).
func Chroma(pix []uint8) float64 {
	if len(pix) < 3 {
		return 0
	}
	var sum int
	for i := 0; i+2 < len(pix); i += 3 {
		r, g, b := pix[i], pix[i+1], pix[i+2]
		sum += int(max(r, g, b)) - int(min(r, g, b))
	}
	return float64(sum) / float64(len(pix)/3)
}
