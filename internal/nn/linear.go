package nn

import (
	"fmt"

	"move/internal/kernels"
)

// Linear is y = x·wᵀ + b for x [N][In], w [Out][In] and an optional b [Out].
func Linear(tp *Tape, x, w, b *Var) *Var {
	xs, ws := x.Shape(), w.Shape()
	if len(xs) != 2 || len(ws) != 2 || xs[1] != ws[1] {
		panic(fmt.Sprintf("nn.Linear: input %v and weight %v ([Out][In]) do not match", xs, ws))
	}
	n, in, out := xs[0], xs[1], ws[0]
	y := tp.out(tp.alloc(n, out), x, w, b)
	kernels.Gemm(false, true, n, out, in, 1, x.Data(), in, w.Data(), in, 0, y.Data(), out)
	if b != nil {
		addBias(y.Data(), b.Data())
	}
	if tp.tracing() {
		tp.trace(Node{Op: "Gemm", In: []*Var{x, w, b}, Out: y})
	}
	tp.push(y, func() {
		if y.Grad == nil {
			return
		}
		dy := y.Grad.Data
		if x.requires {
			dx, over := tp.gradFor(x)
			beta := float32(1)
			if over {
				beta = 0
			}
			kernels.Gemm(false, false, n, in, out, 1, dy, out, w.Data(), in, beta, dx, in)
		}
		if tp.perEx {
			// Per example: dw[k] += dy[k]ᵀ·x[k] (an outer product), db[k] += dy[k].
			xd := x.Data()
			if w.requires {
				dw := tp.exGrad(w, n)
				for k := range n {
					kernels.Gemm(true, false, out, in, 1, 1, dy[k*out:(k+1)*out], out, xd[k*in:(k+1)*in], in, 1, dw[k*out*in:(k+1)*out*in], in)
				}
			}
			if b != nil && b.requires {
				addTo(tp.exGrad(b, n), dy)
			}
			return
		}
		if w.requires {
			kernels.Gemm(true, false, out, in, n, 1, dy, out, x.Data(), in, 1, tp.grad(w), in)
		}
		if b != nil && b.requires {
			sumRows(tp.grad(b), dy)
		}
	})
	return y
}
