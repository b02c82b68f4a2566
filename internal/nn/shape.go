package nn

import (
	"fmt"
	"math/rand/v2"

	"move/internal/kernels"
	"move/internal/tensor"
)

// Add is the elementwise sum of two tensors of the same shape (a residual connection).
func Add(tp *Tape, a, b *Var) *Var { return add(tp, a, b, false) }

// AddReLU is ReLU(a + b) in one pass each way (the end of a post-activation residual block).
func AddReLU(tp *Tape, a, b *Var) *Var { return add(tp, a, b, true) }

func add(tp *Tape, a, b *Var, relu bool) *Var {
	if !tensor.SameShape(a.Shape(), b.Shape()) {
		panic(fmt.Sprintf("nn.Add: shapes %v and %v differ", a.Shape(), b.Shape()))
	}
	ad, bd := a.Data(), b.Data()
	y := tp.out(tp.alloc(a.Shape()...), a, b)
	yd := y.Data()
	pfor(len(yd), func(lo, hi int) { kernels.Add3(yd[lo:hi], ad[lo:hi], bd[lo:hi], relu) })
	if tp.tracing() {
		tp.traceFused(Node{Op: "Add", In: []*Var{a, b}, Out: y}, relu)
	}
	tp.push(y, func() {
		if y.Grad == nil {
			return
		}
		dy := y.Grad.Data
		if relu { // y's gradient is dead after this step: mask it in place
			pfor(len(dy), func(lo, hi int) { kernels.ReluMask(dy[lo:hi], yd[lo:hi]) })
		}
		// b gets a copy (or a sum); a may then take over y's gradient storage.
		if b.requires {
			dst, over := tp.gradFor(b)
			if over {
				pfor(len(dst), func(lo, hi int) { copy(dst[lo:hi], dy[lo:hi]) })
			} else {
				addTo(dst, dy)
			}
		}
		if a.requires {
			tp.passGrad(a, dy)
		}
	})
	return y
}

// Reshape returns x with a new shape of the same size; one dimension may be -1.
func Reshape(tp *Tape, x *Var, shape ...int) *Var {
	shape = append([]int(nil), shape...)
	known, free := 1, -1
	for i, d := range shape {
		if d == -1 {
			free = i
		} else {
			known *= d
		}
	}
	if free >= 0 && known > 0 {
		shape[free] = x.Value.Len() / known
	}
	if tensor.Numel(shape) != x.Value.Len() {
		panic(fmt.Sprintf("nn.Reshape: cannot reshape %v to %v", x.Shape(), shape))
	}
	y := tp.out(tp.alloc(shape...), x)
	copy(y.Data(), x.Data())
	if tp.tracing() {
		tp.trace(Node{Op: "Reshape", In: []*Var{x}, Out: y, Ints: map[string][]int{"shape": shape}})
	}
	tp.push(y, func() {
		if y.Grad != nil && x.requires {
			tp.passGrad(x, y.Grad.Data)
		}
	})
	return y
}

// Flatten reshapes [N][...] to [N][rest].
func Flatten(tp *Tape, x *Var) *Var { return Reshape(tp, x, x.Shape()[0], -1) }

// Concat joins tensors along the last axis (channels for NHWC); all other axes must agree.
func Concat(tp *Tape, xs ...*Var) *Var {
	first := xs[0].Shape()
	rank := len(first)
	rows := xs[0].Value.Len() / first[rank-1]
	total := 0
	for _, x := range xs {
		s := x.Shape()
		if len(s) != rank || !tensor.SameShape(s[:rank-1], first[:rank-1]) {
			panic(fmt.Sprintf("nn.Concat: shape %v does not match %v", s, first))
		}
		total += s[rank-1]
	}
	shape := append(append([]int(nil), first[:rank-1]...), total)
	y := tp.out(tp.alloc(shape...), xs...)
	yd := y.Data()
	off := 0
	for _, x := range xs {
		c, xd := x.Shape()[rank-1], x.Data()
		for r := range rows {
			copy(yd[r*total+off:r*total+off+c], xd[r*c:(r+1)*c])
		}
		off += c
	}
	if tp.tracing() {
		tp.trace(Node{Op: "Concat", In: xs, Out: y})
	}
	tp.push(y, func() {
		if y.Grad == nil {
			return
		}
		off := 0
		for _, x := range xs {
			c := x.Shape()[rank-1]
			if x.requires {
				dx := tp.grad(x)
				for r := range rows {
					d, g := dx[r*c:(r+1)*c], y.Grad.Data[r*total+off:]
					for j := range d {
						d[j] += g[j]
					}
				}
			}
			off += c
		}
	})
	return y
}

// Dropout zeroes each element with probability p and scales the rest by 1/(1-p) in training
// mode; it is the identity otherwise.
func Dropout(tp *Tape, x *Var, p float32, train bool, rng *rand.Rand) *Var {
	if !train || p == 0 {
		return x
	}
	xd := x.Data()
	y := tp.out(tp.alloc(x.Shape()...), x)
	yd := y.Data()
	mask := make([]float32, len(xd))
	keep := 1 / (1 - p)
	for i := range xd {
		if rng.Float32() >= p {
			mask[i] = keep
		}
		yd[i] = xd[i] * mask[i]
	}
	tp.push(y, func() {
		if y.Grad == nil || !x.requires {
			return
		}
		dx := tp.grad(x)
		for i, m := range mask {
			dx[i] += y.Grad.Data[i] * m
		}
	})
	return y
}
