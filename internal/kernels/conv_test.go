package kernels

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
)

// naiveConv computes y, and for a given dy the gradients dx and dw, in float64, by definition.
func naiveConv(g ConvGeom, x, w, dy []float32) (y, dx, dw []float64) {
	y = make([]float64, g.Rows()*g.Cout)
	dx = make([]float64, len(x))
	dw = make([]float64, len(w))
	for b := range g.N {
		for oy := range g.Ho {
			for ox := range g.Wo {
				for co := range g.Cout {
					o := ((b*g.Ho+oy)*g.Wo+ox)*g.Cout + co
					var s float64
					for ky := range g.KH {
						for kx := range g.KW {
							iy, ix := oy*g.Stride-g.Pad+ky, ox*g.Stride-g.Pad+kx
							if iy < 0 || iy >= g.H || ix < 0 || ix >= g.W {
								continue
							}
							for c := range g.C {
								xi := ((b*g.H+iy)*g.W+ix)*g.C + c
								wi := ((co*g.KH+ky)*g.KW+kx)*g.C + c
								s += float64(x[xi]) * float64(w[wi])
								dx[xi] += float64(dy[o]) * float64(w[wi])
								dw[wi] += float64(dy[o]) * float64(x[xi])
							}
						}
					}
					y[o] = s
				}
			}
		}
	}
	return y, dx, dw
}

func closeTo(t *testing.T, what string, got []float32, want []float64, tol float64) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: length %d, want %d", what, len(got), len(want))
	}
	for i := range got {
		if d := math.Abs(float64(got[i]) - want[i]); d > tol*(1+math.Abs(want[i])) {
			t.Fatalf("%s[%d] = %g, want %g", what, i, got[i], want[i])
		}
	}
}

func TestConvMatchesReference(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	cases := []struct{ n, h, w, c, cout, k, s, p int }{
		{1, 5, 5, 1, 1, 3, 1, 1},
		{2, 8, 8, 3, 16, 3, 1, 1},
		{1, 32, 32, 16, 16, 3, 1, 1},
		{3, 9, 7, 5, 7, 3, 2, 1},
		{2, 8, 8, 16, 32, 1, 2, 0},
		{2, 6, 6, 8, 24, 1, 1, 0},
		{1, 11, 13, 4, 6, 5, 1, 2},
		{2, 15, 15, 3, 8, 7, 2, 3},
		{4, 4, 4, 2, 3, 4, 1, 0},
		{1, 3, 3, 2, 2, 3, 1, 0},
		{130, 4, 4, 4, 4, 3, 1, 1},
		{1, 6, 6, 20, 80, 3, 1, 1}, // an input gradient of two K blocks and a channel tail
		// Direct convolutions (output width and channels multiples of 16):
		{2, 32, 32, 16, 32, 3, 2, 1},
		{1, 16, 16, 3, 16, 3, 1, 1},
		{1, 16, 16, 8, 16, 5, 1, 2},
		{2, 17, 33, 4, 16, 3, 2, 0},
		// Direct weight gradients (stride 1, channels multiples of 16):
		{2, 8, 8, 16, 32, 3, 1, 1},
		{3, 7, 9, 32, 16, 3, 1, 0},
	}
	for _, kn := range append(Kernels(), "go-direct") {
		for _, c := range cases {
			t.Run(fmt.Sprintf("%s/%+v", kn, c), func(t *testing.T) {
				name := kn
				if kn == "go-direct" { // the direct path with the pure-Go strided kernel
					name, forceDirect = "go", true
					defer func() { forceDirect = false }()
				}
				withKernel(t, name, func() {
					g, err := NewConvGeom(c.n, c.h, c.w, c.c, c.cout, c.k, c.k, c.s, c.p)
					if err != nil {
						t.Fatal(err)
					}
					x := randSlice(r, c.n*c.h*c.w*c.c)
					w := randSlice(r, c.cout*g.K())
					dy := randSlice(r, g.Rows()*c.cout)
					wy, wdx, wdw := naiveConv(g, x, w, dy)
					y := make([]float32, len(wy))
					if _, direct := g.direct(); direct != (g.Wo%16 == 0 && g.Cout%16 == 0 && g.K() <= kcBlock && !g.pointwise() && kn != "go" && kn != "avx2") {
						t.Fatalf("direct path %v", direct)
					}
					ConvForward(g, x, w, y)
					closeTo(t, "y", y, wy, 1e-4)
					dx := randSlice(r, len(x)) // accumulate onto existing values
					dw := randSlice(r, len(w))
					for i := range wdx {
						wdx[i] += float64(dx[i])
					}
					for i := range wdw {
						wdw[i] += float64(dw[i])
					}
					ConvBackward(g, x, w, dy, dx, dw)
					closeTo(t, "dx", dx, wdx, 1e-4)
					closeTo(t, "dw", dw, wdw, 1e-4)
					// The split entry points, overwriting and accumulating.
					_, wdx1, _ := naiveConv(g, x, w, dy)
					dx1 := randSlice(r, len(x))
					ConvBackwardData(g, w, dy, dx1, false)
					closeTo(t, "dx (overwrite)", dx1, wdx1, 1e-4)
					ConvBackwardData(g, w, dy, dx1, true)
					for i := range wdx1 {
						wdx1[i] *= 2
					}
					closeTo(t, "dx (accumulate)", dx1, wdx1, 1e-4)
					dw1 := make([]float32, len(w))
					ConvBackwardWeight(g, x, dy, dw1)
					_, _, wdw1 := naiveConv(g, x, w, dy)
					closeTo(t, "dw (split)", dw1, wdw1, 1e-4)
					// Per example: each example's gradient is the reference's on that
					// example alone, accumulated onto what dw already held.
					size := len(w)
					each := randSlice(r, c.n*size)
					g1, _ := NewConvGeom(1, c.h, c.w, c.c, c.cout, c.k, c.k, c.s, c.p)
					want := make([][]float64, c.n)
					for b := range c.n {
						xs, ys := c.h*c.w*c.c, g1.Rows()*c.cout
						_, _, want[b] = naiveConv(g1, x[b*xs:(b+1)*xs], w, dy[b*ys:(b+1)*ys])
						for i := range want[b] {
							want[b][i] += float64(each[b*size+i])
						}
					}
					ConvBackwardWeightEach(g, x, dy, each)
					for b := range c.n {
						closeTo(t, fmt.Sprintf("dw of example %d", b), each[b*size:(b+1)*size], want[b], 1e-4)
					}
				})
			})
		}
	}
}

func TestConvGeomErrors(t *testing.T) {
	if _, err := NewConvGeom(1, 2, 2, 1, 1, 5, 5, 1, 0); err == nil {
		t.Fatal("a 5x5 kernel on a 2x2 input without padding must be rejected")
	}
	if _, err := NewConvGeom(1, 8, 8, 1, 1, 3, 3, 0, 1); err == nil {
		t.Fatal("stride 0 must be rejected")
	}
}

func BenchmarkConv(b *testing.B) {
	for _, c := range []struct{ n, hw, ch int }{{128, 32, 16}, {128, 16, 32}, {128, 8, 64}, {1, 32, 16}} {
		g, _ := NewConvGeom(c.n, c.hw, c.hw, c.ch, c.ch, 3, 3, 1, 1)
		r := rand.New(rand.NewPCG(1, 1))
		x, w := randSlice(r, c.n*c.hw*c.hw*c.ch), randSlice(r, c.ch*g.K())
		y, dx, dw := make([]float32, g.Rows()*c.ch), make([]float32, len(x)), make([]float32, len(w))
		flops := float64(2 * g.Rows() * g.Cout * g.K())
		b.Run(fmt.Sprintf("fwd/n%d/%dx%dx%d", c.n, c.hw, c.hw, c.ch), func(b *testing.B) {
			for range b.N {
				ConvForward(g, x, w, y)
			}
			b.ReportMetric(flops*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
		})
		b.Run(fmt.Sprintf("bwd/n%d/%dx%dx%d", c.n, c.hw, c.hw, c.ch), func(b *testing.B) {
			for range b.N {
				ConvBackwardData(g, w, y, dx, false)
				ConvBackwardWeight(g, x, y, dw)
			}
			b.ReportMetric(2*flops*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
		})
	}
}
