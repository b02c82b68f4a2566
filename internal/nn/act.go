package nn

import (
	"math"

	"move/internal/kernels"
)

// unary applies an elementwise function whose derivative is computed from input and output.
func unary(tp *Tape, x *Var, f func(x float32) float32, df func(x, y float32) float32) *Var {
	xd := x.Data()
	y := tp.out(tp.alloc(x.Shape()...), x)
	yd := y.Data()
	pfor(len(xd), func(lo, hi int) {
		for i := lo; i < hi; i++ {
			yd[i] = f(xd[i])
		}
	})
	tp.push(y, func() {
		if y.Grad == nil || !x.requires {
			return
		}
		dx, dy := tp.grad(x), y.Grad.Data
		pfor(len(xd), func(lo, hi int) {
			for i := lo; i < hi; i++ {
				dx[i] += dy[i] * df(xd[i], yd[i])
			}
		})
	})
	return y
}

// ReLU is max(x, 0).
func ReLU(tp *Tape, x *Var) *Var {
	xd := x.Data()
	y := tp.out(tp.alloc(x.Shape()...), x)
	yd := y.Data()
	pfor(len(xd), func(lo, hi int) { kernels.Relu(yd[lo:hi], xd[lo:hi]) })
	if tp.tracing() {
		tp.trace(Node{Op: "Relu", In: []*Var{x}, Out: y})
	}
	tp.push(y, func() {
		if y.Grad == nil || !x.requires {
			return
		}
		reluBackward(tp, x, yd, y.Grad.Data)
	})
	return y
}

// reluBackward passes dy, masked where the ReLU output y is zero, to x. dy is dead after
// this and may be masked in place.
func reluBackward(tp *Tape, x *Var, y, dy []float32) {
	if x.Grad == nil && x.pooled {
		pfor(len(y), func(lo, hi int) { kernels.ReluMask(dy[lo:hi], y[lo:hi]) })
		tp.passGrad(x, dy)
		return
	}
	dx := tp.grad(x)
	pfor(len(y), func(lo, hi int) { kernels.ReluMaskAdd(dx[lo:hi], dy[lo:hi], y[lo:hi]) })
}

// LeakyReLU is x for x > 0 and slope·x otherwise.
func LeakyReLU(tp *Tape, x *Var, slope float32) *Var {
	y := unary(tp, x,
		func(v float32) float32 {
			if v > 0 {
				return v
			}
			return slope * v
		},
		func(v, _ float32) float32 {
			if v > 0 {
				return 1
			}
			return slope
		})
	if tp.tracing() {
		tp.trace(Node{Op: "LeakyRelu", In: []*Var{x}, Out: y, Floats: map[string]float32{"alpha": slope}})
	}
	return y
}

// Tanh is the hyperbolic tangent.
func Tanh(tp *Tape, x *Var) *Var {
	y := unary(tp, x,
		func(v float32) float32 { return float32(math.Tanh(float64(v))) },
		func(_, y float32) float32 { return 1 - y*y })
	if tp.tracing() {
		tp.trace(Node{Op: "Tanh", In: []*Var{x}, Out: y})
	}
	return y
}

// Sigmoid is 1/(1+exp(-x)).
func Sigmoid(tp *Tape, x *Var) *Var {
	y := unary(tp, x,
		func(v float32) float32 { return float32(1 / (1 + math.Exp(-float64(v)))) },
		func(_, y float32) float32 { return y * (1 - y) })
	if tp.tracing() {
		tp.trace(Node{Op: "Sigmoid", In: []*Var{x}, Out: y})
	}
	return y
}

// Scale multiplies by a constant.
func Scale(tp *Tape, x *Var, s float32) *Var {
	return unary(tp, x, func(v float32) float32 { return s * v }, func(_, _ float32) float32 { return s })
}

// Square is x².
func Square(tp *Tape, x *Var) *Var {
	return unary(tp, x, func(v float32) float32 { return v * v }, func(v, _ float32) float32 { return 2 * v })
}

// Sqrt is √(x + eps), eps keeping the gradient finite at zero.
func Sqrt(tp *Tape, x *Var, eps float32) *Var {
	return unary(tp, x,
		func(v float32) float32 { return float32(math.Sqrt(float64(max(v, 0) + eps))) },
		func(_, y float32) float32 { return 1 / (2 * y) })
}
