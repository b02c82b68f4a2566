package style

import "move/internal/nn"

// Meter measures the style distance of images to a style image: the normalised squared
// difference of Gram matrices in a random feature network of its own seed, so that the check
// is not made in the very feature space the transfer optimised.
type Meter struct{ t *Transformer }

// NewMeter prepares a meter for a style image; seed picks the measuring network.
func NewMeter(stylePix []uint8, h, w int, opt Options, seed uint64) (*Meter, error) {
	opt.Seed = seed
	t, err := New(stylePix, h, w, opt)
	if err != nil {
		return nil, err
	}
	return &Meter{t: t}, nil
}

// Distance returns, per image, Σ_layers mean((G(img) - G(style))²) / mean(G(style)²).
// Images are measured at Upscale times their size, like the transfer works.
func (m *Meter) Distance(imgs [][]uint8, h, w int) []float64 {
	out := make([]float64, len(imgs))
	for i, p := range imgs {
		x := toTensor([][]uint8{upscale(p, h, w, m.t.opt.Upscale)}, h*m.t.opt.Upscale, w*m.t.opt.Upscale)
		f := m.t.net.apply(nil, nn.Const(x))
		for l := range 3 {
			g := nn.Gram(nil, f[l]).Data()
			var s float64
			for j, v := range g {
				d := float64(v - m.t.grams[l][j])
				s += d * d
			}
			out[i] += s / float64(len(g)) / float64(m.t.gnorm[l])
		}
	}
	return out
}
