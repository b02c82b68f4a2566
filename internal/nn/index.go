package nn

import (
	"fmt"
	"math"

	"move/internal/tensor"
)

// walk visits every element of a row-major array of the given shape in order, calling
// f(o, off) with its flat index o and, for each stride set sts[k], the offset
// base[k] + Σ_d index[d]·sts[k][d].
func walk(shape []int, base []int, sts [][]int, f func(o int, off []int)) {
	n := tensor.Numel(shape)
	if n == 0 {
		return
	}
	idx := make([]int, len(shape))
	off := append([]int(nil), base...)
	for o := 0; o < n; o++ {
		f(o, off)
		for d := len(shape) - 1; d >= 0; d-- {
			idx[d]++
			for k := range off {
				off[k] += sts[k][d]
			}
			if idx[d] < shape[d] {
				break
			}
			for k := range off {
				off[k] -= sts[k][d] * shape[d]
			}
			idx[d] = 0
		}
	}
}

// Transpose permutes the axes of x: axis d of the result is axis perm[d] of x.
func Transpose(tp *Tape, x *Var, perm ...int) *Var {
	xs := x.Shape()
	if len(perm) != len(xs) {
		panic(fmt.Sprintf("nn.Transpose: permutation %v for shape %v", perm, xs))
	}
	seen := make([]bool, len(xs))
	shape, st := make([]int, len(xs)), make([]int, len(xs))
	xst := tensor.Strides(xs)
	for d, p := range perm {
		if p < 0 || p >= len(xs) || seen[p] {
			panic(fmt.Sprintf("nn.Transpose: %v is not a permutation of %d axes", perm, len(xs)))
		}
		seen[p] = true
		shape[d], st[d] = xs[p], xst[p]
	}
	xd := x.Data()
	y := tp.out(tp.alloc(shape...), x)
	yd := y.Data()
	walk(shape, []int{0}, [][]int{st}, func(o int, off []int) { yd[o] = xd[off[0]] })
	if tp.tracing() {
		tp.trace(Node{Op: "Transpose", In: []*Var{x}, Out: y, Ints: map[string][]int{"perm": append([]int(nil), perm...)}})
	}
	tp.push(y, func() {
		if y.Grad == nil || !x.requires {
			return
		}
		dx, dy := tp.grad(x), y.Grad.Data
		walk(shape, []int{0}, [][]int{st}, func(o int, off []int) { dx[off[0]] += dy[o] })
	})
	return y
}

// Pad surrounds x with zeros: begin[d] before and end[d] after its elements along axis d.
func Pad(tp *Tape, x *Var, begin, end []int) *Var {
	xs := x.Shape()
	if len(begin) != len(xs) || len(end) != len(xs) {
		panic(fmt.Sprintf("nn.Pad: pads %v %v for shape %v", begin, end, xs))
	}
	shape := make([]int, len(xs))
	for d := range xs {
		if begin[d] < 0 || end[d] < 0 {
			panic(fmt.Sprintf("nn.Pad: negative pads %v %v", begin, end))
		}
		shape[d] = xs[d] + begin[d] + end[d]
	}
	yst := tensor.Strides(shape)
	base := 0
	for d := range xs {
		base += begin[d] * yst[d]
	}
	xd := x.Data()
	y := tp.out(tp.zeros(shape...), x)
	yd := y.Data()
	walk(xs, []int{base}, [][]int{yst}, func(i int, off []int) { yd[off[0]] = xd[i] })
	if tp.tracing() {
		tp.trace(Node{Op: "Pad", In: []*Var{x}, Out: y, Ints: map[string][]int{
			"begin": append([]int(nil), begin...), "end": append([]int(nil), end...)}})
	}
	tp.push(y, func() {
		if y.Grad == nil || !x.requires {
			return
		}
		dx, dy := tp.grad(x), y.Grad.Data
		walk(xs, []int{base}, [][]int{yst}, func(i int, off []int) { dx[i] += dy[off[0]] })
	})
	return y
}

// Slice takes size[d] elements of x along each axis d, starting at start[d] and stepping by
// step[d] (which may be negative).
func Slice(tp *Tape, x *Var, start, step, size []int) *Var {
	xs := x.Shape()
	if len(start) != len(xs) || len(step) != len(xs) || len(size) != len(xs) {
		panic(fmt.Sprintf("nn.Slice: start %v step %v size %v for shape %v", start, step, size, xs))
	}
	xst := tensor.Strides(xs)
	st := make([]int, len(xs))
	base := 0
	for d := range xs {
		last := start[d] + (size[d]-1)*step[d]
		if size[d] < 0 || step[d] == 0 || (size[d] > 0 && (start[d] < 0 || start[d] >= xs[d] || last < 0 || last >= xs[d])) {
			panic(fmt.Sprintf("nn.Slice: start %v step %v size %v out of shape %v", start, step, size, xs))
		}
		base += start[d] * xst[d]
		st[d] = step[d] * xst[d]
	}
	xd := x.Data()
	y := tp.out(tp.alloc(size...), x)
	yd := y.Data()
	walk(size, []int{base}, [][]int{st}, func(o int, off []int) { yd[o] = xd[off[0]] })
	if tp.tracing() {
		tp.trace(Node{Op: "Slice", In: []*Var{x}, Out: y, Ints: map[string][]int{
			"start": append([]int(nil), start...), "step": append([]int(nil), step...)}})
	}
	tp.push(y, func() {
		if y.Grad == nil || !x.requires {
			return
		}
		dx, dy := tp.grad(x), y.Grad.Data
		walk(size, []int{base}, [][]int{st}, func(o int, off []int) { dx[off[0]] += dy[o] })
	})
	return y
}

// Binary applies op ("Add", "Sub", "Mul" or "Div") elementwise to a and b, which have the same
// rank and along each axis the same size or size 1 (broadcast, as in NumPy).
func Binary(tp *Tape, op string, a, b *Var) *Var {
	as, bs := a.Shape(), b.Shape()
	if len(as) != len(bs) {
		panic(fmt.Sprintf("nn.Binary: ranks of %v and %v differ", as, bs))
	}
	shape := make([]int, len(as))
	ast, bst := tensor.Strides(as), tensor.Strides(bs)
	for d := range as {
		switch {
		case as[d] == bs[d]:
			shape[d] = as[d]
		case as[d] == 1:
			shape[d], ast[d] = bs[d], 0
		case bs[d] == 1:
			shape[d], bst[d] = as[d], 0
		default:
			panic(fmt.Sprintf("nn.Binary: shapes %v and %v do not broadcast", as, bs))
		}
	}
	var f func(x, y float32) float32
	switch op {
	case "Add":
		f = func(x, y float32) float32 { return x + y }
	case "Sub":
		f = func(x, y float32) float32 { return x - y }
	case "Mul":
		f = func(x, y float32) float32 { return x * y }
	case "Div":
		f = func(x, y float32) float32 { return x / y }
	default:
		panic("nn.Binary: unknown operation " + op)
	}
	ad, bd := a.Data(), b.Data()
	y := tp.out(tp.alloc(shape...), a, b)
	yd := y.Data()
	sts := [][]int{ast, bst}
	walk(shape, []int{0, 0}, sts, func(o int, off []int) { yd[o] = f(ad[off[0]], bd[off[1]]) })
	if tp.tracing() {
		tp.trace(Node{Op: op, In: []*Var{a, b}, Out: y})
	}
	tp.push(y, func() {
		if y.Grad == nil {
			return
		}
		dy := y.Grad.Data
		var da, db []float32
		if a.requires {
			da = tp.grad(a)
		}
		if b.requires {
			db = tp.grad(b)
		}
		walk(shape, []int{0, 0}, sts, func(o int, off []int) {
			g, x, z := dy[o], ad[off[0]], bd[off[1]]
			var ga, gb float32
			switch op {
			case "Add":
				ga, gb = g, g
			case "Sub":
				ga, gb = g, -g
			case "Mul":
				ga, gb = g*z, g*x
			case "Div":
				ga, gb = g/z, -g*x/(z*z)
			}
			if da != nil {
				da[off[0]] += ga
			}
			if db != nil {
				db[off[1]] += gb
			}
		})
	})
	return y
}

// Clip limits x to [lo, hi]; the gradient passes where lo <= x <= hi, as in PyTorch's clamp.
// An infinite bound is no bound.
func Clip(tp *Tape, x *Var, lo, hi float32) *Var {
	y := unary(tp, x,
		func(v float32) float32 { return min(max(v, lo), hi) },
		func(v, _ float32) float32 {
			if v >= lo && v <= hi {
				return 1
			}
			return 0
		})
	if tp.tracing() {
		tp.trace(Node{Op: "Clip", In: []*Var{x}, Out: y, Floats: map[string]float32{"min": lo, "max": hi}})
	}
	return y
}

// Inf is +∞ as a float32, for open Clip bounds.
var Inf = float32(math.Inf(1))
