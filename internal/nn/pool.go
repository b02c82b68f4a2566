package nn

import (
	"fmt"

	"move/internal/kernels"
	"move/internal/parallel"
)

type poolGeom struct{ n, h, w, c, k, s, p, ho, wo int }

func newPoolGeom(op string, x *Var, k, s, p int) poolGeom {
	xs := x.Shape()
	if len(xs) != 4 {
		panic(fmt.Sprintf("nn.%s: input %v is not NHWC", op, xs))
	}
	g := poolGeom{n: xs[0], h: xs[1], w: xs[2], c: xs[3], k: k, s: s, p: p}
	g.ho, g.wo = (g.h+2*p-k)/s+1, (g.w+2*p-k)/s+1
	if k < 1 || s < 1 || p < 0 || 2*p > k || g.ho < 1 || g.wo < 1 {
		panic(fmt.Sprintf("nn.%s: window %d stride %d pad %d does not fit input %v", op, k, s, p, xs))
	}
	return g
}

// visit calls f(input offset, output offset) for every (window, in-range position) of the
// output rows [lo, hi) (rows of N·Ho), the positions of one window in a row.
func (g poolGeom) visit(lo, hi int, f func(i, o int)) {
	for r := lo; r < hi; r++ {
		b, oy := r/g.ho, r%g.ho
		for ox := range g.wo {
			o := ((b*g.ho+oy)*g.wo + ox) * g.c
			for ky := range g.k {
				iy := oy*g.s - g.p + ky
				if iy < 0 || iy >= g.h {
					continue
				}
				for kx := range g.k {
					ix := ox*g.s - g.p + kx
					if ix < 0 || ix >= g.w {
						continue
					}
					f(((b*g.h+iy)*g.w+ix)*g.c, o)
				}
			}
		}
	}
}

// rows runs fn over the output rows, shared among the workers when the windows hold enough
// work (a 224-pixel input has few rows, each of them long).
func (g poolGeom) rows(fn func(lo, hi int)) {
	n := g.n * g.ho
	if n*g.wo*g.c*g.k*g.k < 1<<15 {
		fn(0, n)
		return
	}
	parallel.For(n, func(lo, hi, _ int) { fn(lo, hi) })
}

// MaxPool2D takes the maximum over k x k windows (padding counts as -inf, as in PyTorch).
func MaxPool2D(tp *Tape, x *Var, k, stride, pad int) *Var {
	g := newPoolGeom("MaxPool2D", x, k, stride, pad)
	xd := x.Data()
	y := tp.out(tp.alloc(g.n, g.ho, g.wo, g.c), x)
	yd := y.Data()
	// Window positions outer, channels inner: each step reads one contiguous pixel. A window
	// always holds a position in range (2·pad <= k); ties keep the first, as PyTorch does.
	if tp.tracing() {
		tp.trace(Node{Op: "MaxPool", In: []*Var{x}, Out: y, Ints: map[string][]int{"kernel": {k}, "stride": {stride}, "pad": {pad}}})
	}
	// Positions of the maxima only for a backward pass; without one, the maxima alone.
	var arg []int32 // flat input index of each maximum
	if y.requires {
		arg = make([]int32, len(yd))
	}
	g.rows(func(lo, hi int) {
		last := -1
		g.visit(lo, hi, func(i, o int) {
			best, px := yd[o:o+g.c], xd[i:i+g.c]
			switch {
			case o != last:
				last = o
				copy(best, px)
				if arg != nil {
					for ch := range g.c {
						arg[o+ch] = int32(i + ch)
					}
				}
			case arg == nil:
				kernels.MaxTo(best, px)
			default:
				kernels.MaxArgTo(best, arg[o:o+g.c], px, int32(i))
			}
		})
	})
	tp.push(y, func() {
		if y.Grad == nil || !x.requires {
			return
		}
		dx := tp.grad(x)
		for i, a := range arg {
			dx[a] += y.Grad.Data[i]
		}
	})
	return y
}

// AvgPool2D averages over k x k windows; padded positions count as zeros in the average
// (PyTorch's default count_include_pad=True).
func AvgPool2D(tp *Tape, x *Var, k, stride, pad int) *Var {
	g := newPoolGeom("AvgPool2D", x, k, stride, pad)
	xd := x.Data()
	y := tp.out(tp.zeros(g.n, g.ho, g.wo, g.c), x)
	inv := 1 / float32(k*k)
	yd := y.Data()
	g.rows(func(lo, hi int) {
		g.visit(lo, hi, func(i, o int) {
			for ch := range g.c {
				yd[o+ch] += inv * xd[i+ch]
			}
		})
	})
	if tp.tracing() {
		tp.trace(Node{Op: "AveragePool", In: []*Var{x}, Out: y, Ints: map[string][]int{"kernel": {k}, "stride": {stride}, "pad": {pad}}})
	}
	tp.push(y, func() {
		if y.Grad == nil || !x.requires {
			return
		}
		dx, dy := tp.grad(x), y.Grad.Data
		g.visit(0, g.n*g.ho, func(i, o int) {
			for ch := range g.c {
				dx[i+ch] += inv * dy[o+ch]
			}
		})
	})
	return y
}

// GlobalAvgPool averages each channel over the spatial axes: [N][H][W][C] -> [N][C].
func GlobalAvgPool(tp *Tape, x *Var) *Var {
	xs := x.Shape()
	n, hw, c := xs[0], xs[1]*xs[2], xs[3]
	xd := x.Data()
	y := tp.out(tp.alloc(n, c), x)
	yd := y.Data()
	inv := 1 / float64(hw)
	for b := range n {
		acc := make([]float64, c)
		for p := range hw {
			row := xd[(b*hw+p)*c : (b*hw+p+1)*c]
			for j, v := range row {
				acc[j] += float64(v)
			}
		}
		for j := range c {
			yd[b*c+j] = float32(acc[j] * inv)
		}
	}
	if tp.tracing() {
		tp.trace(Node{Op: "GlobalAveragePool", In: []*Var{x}, Out: y})
	}
	tp.push(y, func() {
		if y.Grad == nil || !x.requires {
			return
		}
		dx, over := tp.gradFor(x)
		dy := y.Grad.Data
		s := float32(inv)
		for b := range n {
			for p := range hw {
				row := dx[(b*hw+p)*c : (b*hw+p+1)*c]
				g := dy[b*c : (b+1)*c]
				if over {
					for j := range row {
						row[j] = s * g[j]
					}
					continue
				}
				for j := range row {
					row[j] += s * g[j]
				}
			}
		}
	})
	return y
}

// UpsampleNearest repeats each pixel s x s times.
func UpsampleNearest(tp *Tape, x *Var, s int) *Var {
	xs := x.Shape()
	n, h, w, c := xs[0], xs[1], xs[2], xs[3]
	xd := x.Data()
	y := tp.out(tp.alloc(n, h*s, w*s, c), x)
	yd := y.Data()
	for b := range n {
		for oy := range h * s {
			for ox := range w * s {
				src := ((b*h+oy/s)*w + ox/s) * c
				copy(yd[((b*h*s+oy)*w*s+ox)*c:][:c], xd[src:src+c])
			}
		}
	}
	tp.push(y, func() {
		if y.Grad == nil || !x.requires {
			return
		}
		dx, dy := tp.grad(x), y.Grad.Data
		for b := range n {
			for oy := range h * s {
				for ox := range w * s {
					d := dx[((b*h+oy/s)*w+ox/s)*c:][:c]
					g := dy[((b*h*s+oy)*w*s+ox)*c:][:c]
					for j := range d {
						d[j] += g[j]
					}
				}
			}
		}
	})
	return y
}
