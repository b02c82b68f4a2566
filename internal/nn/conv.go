package nn

import (
	"fmt"

	"move/internal/kernels"
	"move/internal/parallel"
)

// pfor runs fn over [0, n) split across the workers when n is large enough to pay for it.
func pfor(n int, fn func(lo, hi int)) {
	if n < 1<<15 {
		fn(0, n)
		return
	}
	parallel.For(n, func(lo, hi, _ int) { fn(lo, hi) })
}

func convGeom(x, w *Var, stride, pad int) kernels.ConvGeom {
	xs, ws := x.Shape(), w.Shape()
	if len(xs) != 4 || len(ws) != 4 || xs[3] != ws[3] {
		panic(fmt.Sprintf("nn.Conv2D: input %v (NHWC) and weight %v ([Cout][KH][KW][Cin]) do not match", xs, ws))
	}
	g, err := kernels.NewConvGeom(xs[0], xs[1], xs[2], xs[3], ws[0], ws[1], ws[2], stride, pad)
	if err != nil {
		panic("nn.Conv2D: " + err.Error())
	}
	return g
}

// Conv2D is a 2-D convolution of an NHWC input with weights [Cout][KH][KW][Cin] and an optional
// bias [Cout] (nil for none).
func Conv2D(tp *Tape, x, w, b *Var, stride, pad int) *Var {
	g := convGeom(x, w, stride, pad)
	y := tp.out(tp.alloc(g.N, g.Ho, g.Wo, g.Cout), x, w, b)
	kernels.ConvForward(g, x.Data(), w.Data(), y.Data())
	if b != nil {
		addBias(y.Data(), b.Data())
	}
	if tp.tracing() {
		tp.trace(Node{Op: "Conv", In: []*Var{x, w, b}, Out: y, Ints: map[string][]int{"stride": {stride}, "pad": {pad}}})
	}
	tp.push(y, func() {
		if y.Grad == nil {
			return
		}
		if x.requires {
			dx, over := tp.gradFor(x)
			kernels.ConvBackwardData(g, w.Data(), y.Grad.Data, dx, !over)
		}
		if tp.perEx {
			convPerExample(tp, g, x, w, b, y.Grad.Data)
			return
		}
		if w.requires {
			kernels.ConvBackwardWeight(g, x.Data(), y.Grad.Data, tp.grad(w))
		}
		if b != nil && b.requires {
			sumRows(tp.grad(b), y.Grad.Data)
		}
	})
	return y
}

// convPerExample adds each example's weight and bias gradients to w's and b's ExGrad.
func convPerExample(tp *Tape, g kernels.ConvGeom, x, w, b *Var, dy []float32) {
	if w.requires {
		kernels.ConvBackwardWeightEach(g, x.Data(), dy, tp.exGrad(w, g.N))
	}
	if b != nil && b.requires {
		db, ys := tp.exGrad(b, g.N), g.Ho*g.Wo*g.Cout
		for n := range g.N {
			sumRows(db[n*g.Cout:(n+1)*g.Cout], dy[n*ys:(n+1)*ys])
		}
	}
}

// ConvTranspose2D is the transposed convolution (the gradient of Conv2D with respect to its
// input) of an NHWC input x[N][H][W][Cin] with weights [Cin][KH][KW][Cout]: the output is
// [N][(H-1)·stride-2·pad+KH+outPad][…][Cout]. With PyTorch's ConvTranspose2d weight
// [Cin][Cout][KH][KW], permute to this layout.
func ConvTranspose2D(tp *Tape, x, w, b *Var, stride, pad, outPad int) *Var {
	xs, ws := x.Shape(), w.Shape()
	if len(xs) != 4 || len(ws) != 4 || xs[3] != ws[0] {
		panic(fmt.Sprintf("nn.ConvTranspose2D: input %v and weight %v ([Cin][KH][KW][Cout]) do not match", xs, ws))
	}
	ho := (xs[1]-1)*stride - 2*pad + ws[1] + outPad
	wo := (xs[2]-1)*stride - 2*pad + ws[2] + outPad
	// The equivalent convolution maps the output (as its input) back to x (as its output).
	g, err := kernels.NewConvGeom(xs[0], ho, wo, ws[3], ws[0], ws[1], ws[2], stride, pad)
	if err != nil || g.Ho != xs[1] || g.Wo != xs[2] {
		panic(fmt.Sprintf("nn.ConvTranspose2D: inconsistent geometry for input %v, weight %v, stride %d, pad %d", xs, ws, stride, pad))
	}
	y := tp.out(tp.zeros(xs[0], ho, wo, ws[3]), x, w, b)
	kernels.ConvBackward(g, nil, w.Data(), x.Data(), y.Data(), nil)
	if b != nil {
		addBias(y.Data(), b.Data())
	}
	tp.push(y, func() {
		if y.Grad == nil {
			return
		}
		if x.requires {
			tmp := tp.alloc(xs...)
			kernels.ConvForward(g, y.Grad.Data, w.Data(), tmp.Data)
			addTo(tp.grad(x), tmp.Data)
		}
		if w.requires {
			kernels.ConvBackward(g, y.Grad.Data, w.Data(), x.Data(), nil, tp.grad(w))
		}
		if b != nil && b.requires {
			sumRows(tp.grad(b), y.Grad.Data)
		}
	})
	return y
}

// addBias adds b to every row of y (rows of len(b)).
func addBias(y, b []float32) {
	c := len(b)
	pfor(len(y)/c, func(lo, hi int) {
		for r := lo; r < hi; r++ {
			row := y[r*c : (r+1)*c]
			for j := range row {
				row[j] += b[j]
			}
		}
	})
}

// sumRows adds the column sums of src (rows of len(dst)) to dst, in float64.
func sumRows(dst, src []float32) {
	c := len(dst)
	acc := make([]float64, c)
	for r := 0; r < len(src)/c; r++ {
		row := src[r*c : (r+1)*c]
		for j, v := range row {
			acc[j] += float64(v)
		}
	}
	for j := range dst {
		dst[j] += float32(acc[j])
	}
}

// addTo adds src to dst elementwise.
func addTo(dst, src []float32) {
	pfor(len(dst), func(lo, hi int) { kernels.AddTo(dst[lo:hi], src[lo:hi]) })
}
