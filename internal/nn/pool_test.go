package nn

import (
	"math"
	"math/rand/v2"
	"testing"

	"move/internal/tensor"
)

// MaxPool2D's forward pass against the definition, on a small input (serial) and one large
// enough to be shared among the workers, with padding and ties.
func TestMaxPoolMatchesDefinition(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for _, c := range []struct{ n, h, w, ch, k, s, p int }{{2, 7, 6, 3, 3, 2, 1}, {4, 56, 56, 64, 3, 2, 1}, {1, 5, 5, 2, 2, 1, 0}} {
		x := tensor.New(c.n, c.h, c.w, c.ch)
		for i := range x.Data {
			x.Data[i] = float32(rng.IntN(7)) // ties
		}
		// Both paths: the maxima alone (no gradient wanted) and with their positions.
		for _, xv := range []*Var{Const(x), Leaf(x)} {
			y := MaxPool2D(NewTape(true), xv, c.k, c.s, c.p)
			ho, wo := y.Shape()[1], y.Shape()[2]
			for b := range c.n {
				for oy := range ho {
					for ox := range wo {
						for ch := range c.ch {
							want := float32(math.Inf(-1))
							for ky := range c.k {
								for kx := range c.k {
									iy, ix := oy*c.s-c.p+ky, ox*c.s-c.p+kx
									if iy >= 0 && iy < c.h && ix >= 0 && ix < c.w {
										want = max(want, x.Data[((b*c.h+iy)*c.w+ix)*c.ch+ch])
									}
								}
							}
							if got := y.Data()[((b*ho+oy)*wo+ox)*c.ch+ch]; got != want {
								t.Fatalf("%+v (gradient wanted: %v): y[%d][%d][%d][%d] = %g, want %g", c, xv.RequiresGrad(), b, oy, ox, ch, got, want)
							}
						}
					}
				}
			}
		}
	}
}
