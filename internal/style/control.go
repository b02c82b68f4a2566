package style

import (
	"math"
	"math/rand/v2"
)

// ControlSide is the side of a procedural control style image.
const ControlSide = 128

// Control paints the k-th procedural control style: a square canvas of ControlSide pixels
// covered with a few hundred soft, oriented brush strokes in a palette of five colours, both
// drawn from k. Control styles are the specificity check of verification: the key's images
// are styled with them too, and a model is evidence of theft only when it answers the owner's
// style differently from styles nobody trained on. They need no file and no licence, differ
// from any painting an owner picks, and are the same on every machine for the same k.
func Control(k int) (pix []uint8, h, w int) {
	rng := rand.New(rand.NewPCG(uint64(k)+1, 0x636f6e74726f6c))
	const n = ControlSide
	var palette [5][3]float64
	for i := range palette {
		// Saturated colours with varied brightness: hue uniform, HSV-like mixing.
		hue := rng.Float64() * 6
		sat := 0.5 + 0.5*rng.Float64()
		val := 0.3 + 0.7*rng.Float64()
		for c := range 3 {
			d := math.Abs(math.Mod(hue-float64(2*c)+6, 6) - 3) // 3 at the colour's own hue, 0 opposite
			x := math.Min(1, math.Max(0, d-1))
			palette[i][c] = val * (1 - sat + sat*x)
		}
	}
	img := make([]float64, n*n*3)
	bg := palette[0]
	for i := 0; i < n*n; i++ {
		copy(img[i*3:i*3+3], bg[:])
	}
	// A dominant stroke direction per style, jittered per stroke.
	theta0 := rng.Float64() * math.Pi
	width := 2 + 4*rng.Float64()
	length := 10 + 30*rng.Float64()
	for range 400 {
		col := palette[rng.IntN(len(palette))]
		cx, cy := rng.Float64()*n, rng.Float64()*n
		th := theta0 + (rng.Float64()-0.5)*1.2
		dx, dy := math.Cos(th), math.Sin(th)
		half := length * (0.5 + rng.Float64()) / 2
		wd := width * (0.6 + 0.8*rng.Float64())
		x0, x1 := int(cx-half-wd), int(cx+half+wd)
		y0, y1 := int(cy-half-wd), int(cy+half+wd)
		for y := max(0, y0); y <= min(n-1, y1); y++ {
			for x := max(0, x0); x <= min(n-1, x1); x++ {
				px, py := float64(x)-cx, float64(y)-cy
				along := px*dx + py*dy
				across := -px*dy + py*dx
				if math.Abs(along) > half {
					continue
				}
				a := 1 - math.Abs(across)/wd
				if a <= 0 {
					continue
				}
				a = math.Min(1, 1.5*a) * 0.85
				for c := range 3 {
					p := &img[(y*n+x)*3+c]
					*p = (1-a)**p + a*col[c]
				}
			}
		}
	}
	pix = make([]uint8, len(img))
	for i, v := range img {
		pix[i] = uint8(math.Round(255 * math.Min(1, math.Max(0, v))))
	}
	return pix, n, n
}
