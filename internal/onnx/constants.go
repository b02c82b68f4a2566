package onnx

import (
	"fmt"
	"math"
	"slices"

	"move/internal/tensor"
)

// Evaluation of constants (the eval* functions): the small integer graphs (Shape, Gather,
// Unsqueeze, Concat, Reshape, ...) with which exporters compute a Flatten or a padding. Not to
// be confused with folding batch norms into convolutions (ExportOptions.FoldBatchNorms).

// gatherIndex builds the flat source index of every element of an array of the given shape
// whose element at index idx comes from base + Σ idx[d]·st[d].
func gatherIndex(shape []int, base int, st []int) []int {
	n := tensor.Numel(shape)
	out := make([]int, 0, n)
	if n == 0 {
		return out
	}
	idx := make([]int, len(shape))
	off := base
	for range n {
		out = append(out, off)
		for d := len(shape) - 1; d >= 0; d-- {
			idx[d]++
			off += st[d]
			if idx[d] < shape[d] {
				break
			}
			off -= st[d] * shape[d]
			idx[d] = 0
		}
	}
	return out
}

// pick builds a constant of the given shape from the elements at src of c.
func (c *ctensor) pick(shape []int, src []int) *ctensor {
	out := &ctensor{shape: shape}
	if c.isInt() {
		out.i = make([]int64, len(src))
		for k, s := range src {
			out.i[k] = c.i[s]
		}
	} else {
		out.f = make([]float64, len(src))
		for k, s := range src {
			out.f[k] = c.f[s]
		}
	}
	return out
}

func (c *ctensor) reshaped(shape []int) *ctensor {
	return &ctensor{shape: shape, f: c.f, i: c.i}
}

// axis normalises a possibly negative axis of a rank-r tensor.
func axis(a, r int) (int, error) {
	if a < 0 {
		a += r
	}
	if a < 0 || a >= r {
		return 0, fmt.Errorf("axis %d out of range for rank %d", a, r)
	}
	return a, nil
}

// broadcastShape is NumPy's broadcast of two shapes, right-aligned.
func broadcastShape(a, b []int) ([]int, error) {
	r := max(len(a), len(b))
	out := make([]int, r)
	for d := range r {
		x, y := 1, 1
		if k := d - (r - len(a)); k >= 0 {
			x = a[k]
		}
		if k := d - (r - len(b)); k >= 0 {
			y = b[k]
		}
		switch {
		case x == y, y == 1:
			out[d] = x
		case x == 1:
			out[d] = y
		default:
			return nil, fmt.Errorf("shapes %v and %v do not broadcast", a, b)
		}
	}
	return out, nil
}

// broadcastIndex gives, for each element of shape out, the flat index into a tensor of
// shape in (right-aligned, size-1 axes repeated).
func broadcastIndex(in, out []int) []int {
	st := tensor.Strides(in)
	full := make([]int, len(out))
	for d := range out {
		if k := d - (len(out) - len(in)); k >= 0 && in[k] != 1 {
			full[d] = st[k]
		}
	}
	return gatherIndex(out, 0, full)
}

// evalBinary evaluates Add, Sub, Mul, Div (and comparisons) on constants.
func evalBinary(op string, a, b *ctensor) (*ctensor, error) {
	shape, err := broadcastShape(a.shape, b.shape)
	if err != nil {
		return nil, err
	}
	if tensor.Numel(shape) > maxBuilt {
		return nil, fmt.Errorf("broadcast to %v is too large", shape)
	}
	ia, ib := broadcastIndex(a.shape, shape), broadcastIndex(b.shape, shape)
	out := &ctensor{shape: shape}
	if a.isInt() && b.isInt() {
		out.i = make([]int64, len(ia))
		for k := range ia {
			x, y := a.i[ia[k]], b.i[ib[k]]
			switch op {
			case "Add":
				out.i[k] = x + y
			case "Sub":
				out.i[k] = x - y
			case "Mul":
				out.i[k] = x * y
			case "Div":
				if y == 0 {
					return nil, fmt.Errorf("integer division by zero")
				}
				out.i[k] = x / y
			default:
				return nil, fmt.Errorf("%s on integers is not supported", op)
			}
		}
		return out, nil
	}
	af, bf := a.floats(), b.floats()
	out.f = make([]float64, len(ia))
	for k := range ia {
		x, y := af[ia[k]], bf[ib[k]]
		switch op {
		case "Add":
			out.f[k] = x + y
		case "Sub":
			out.f[k] = x - y
		case "Mul":
			out.f[k] = x * y
		case "Div":
			out.f[k] = x / y
		default:
			return nil, fmt.Errorf("%s on constants is not supported", op)
		}
	}
	return out, nil
}

func evalConcat(cs []*ctensor, ax int) (*ctensor, error) {
	r := len(cs[0].shape)
	a, err := axis(ax, r)
	if err != nil {
		return nil, err
	}
	shape := slices.Clone(cs[0].shape)
	shape[a] = 0
	isInt := cs[0].isInt()
	for _, c := range cs {
		if len(c.shape) != r {
			return nil, fmt.Errorf("concatenating ranks %d and %d", r, len(c.shape))
		}
		for d := range r {
			if d != a && c.shape[d] != cs[0].shape[d] {
				return nil, fmt.Errorf("concatenating shapes %v and %v on axis %d", cs[0].shape, c.shape, a)
			}
		}
		shape[a] += c.shape[a]
		isInt = isInt && c.isInt()
	}
	if tensor.Numel(shape) > maxBuilt {
		return nil, fmt.Errorf("result %v too large", shape)
	}
	outer := tensor.Numel(shape[:a])
	out := &ctensor{shape: shape}
	for o := range outer {
		for _, c := range cs {
			inner := tensor.Numel(c.shape[a:])
			if isInt {
				out.i = append(out.i, c.i[o*inner:(o+1)*inner]...)
			} else {
				out.f = append(out.f, c.floats()[o*inner:(o+1)*inner]...)
			}
		}
	}
	if isInt && out.i == nil {
		out.i = []int64{}
	} else if !isInt && out.f == nil {
		out.f = []float64{}
	}
	return out, nil
}

func evalTranspose(c *ctensor, perm []int) (*ctensor, error) {
	if err := checkPerm(perm, len(c.shape)); err != nil {
		return nil, err
	}
	st := tensor.Strides(c.shape)
	shape, pst := make([]int, len(perm)), make([]int, len(perm))
	for d, p := range perm {
		shape[d], pst[d] = c.shape[p], st[p]
	}
	return c.pick(shape, gatherIndex(shape, 0, pst)), nil
}

func checkPerm(perm []int, r int) error {
	if len(perm) != r {
		return fmt.Errorf("permutation %v for rank %d", perm, r)
	}
	seen := make([]bool, r)
	for _, p := range perm {
		if p < 0 || p >= r || seen[p] {
			return fmt.Errorf("%v is not a permutation", perm)
		}
		seen[p] = true
	}
	return nil
}

func evalGather(data, idx *ctensor, ax int) (*ctensor, error) {
	if !idx.isInt() {
		return nil, fmt.Errorf("Gather indices must be integers")
	}
	a, err := axis(ax, len(data.shape))
	if err != nil {
		return nil, err
	}
	dim := data.shape[a]
	shape := append(append(slices.Clone(data.shape[:a]), idx.shape...), data.shape[a+1:]...)
	outer, inner := tensor.Numel(data.shape[:a]), tensor.Numel(data.shape[a+1:])
	if tensor.Numel(shape) > maxBuilt {
		return nil, fmt.Errorf("Gather result %v too large", shape)
	}
	var src []int
	for o := range outer {
		for _, j := range idx.i {
			if j < 0 {
				j += int64(dim)
			}
			if j < 0 || j >= int64(dim) {
				return nil, fmt.Errorf("Gather index %d out of range %d", j, dim)
			}
			for k := range inner {
				src = append(src, (o*dim+int(j))*inner+k)
			}
		}
	}
	return data.pick(shape, src), nil
}

// sliceAxis resolves ONNX Slice's start, end and step on an axis of size dim into the first
// index and the number of elements.
func sliceAxis(start, end, step, dim int) (first, size int) {
	if start < 0 {
		start += dim
	}
	if end < 0 {
		end += dim
	}
	if step > 0 {
		start = min(max(start, 0), dim)
		end = min(max(end, 0), dim)
		return start, max(0, (end-start+step-1)/step)
	}
	start = min(max(start, 0), dim-1)
	end = min(max(end, -1), dim-1)
	return start, max(0, (start-end-step-1)/(-step))
}

// sliceSpec turns Slice's operands into per-axis first index, step and size for a tensor of
// the given shape.
func sliceSpec(shape []int, starts, ends, axes, steps []int) (first, step, size []int, err error) {
	r := len(shape)
	first, step, size = make([]int, r), make([]int, r), slices.Clone(shape)
	for d := range r {
		step[d] = 1
	}
	if len(ends) != len(starts) || (axes != nil && len(axes) != len(starts)) || (steps != nil && len(steps) != len(starts)) {
		return nil, nil, nil, fmt.Errorf("Slice operands of different lengths")
	}
	seen := make([]bool, r)
	for k := range starts {
		a := k
		if axes != nil {
			a = axes[k]
		}
		if a, err = axis(a, r); err != nil {
			return nil, nil, nil, err
		}
		if seen[a] {
			return nil, nil, nil, fmt.Errorf("Slice repeats axis %d", a)
		}
		seen[a] = true
		s := 1
		if steps != nil {
			s = steps[k]
		}
		if s == 0 {
			return nil, nil, nil, fmt.Errorf("Slice step 0")
		}
		step[a] = s
		first[a], size[a] = sliceAxis(starts[k], ends[k], s, shape[a])
	}
	return first, step, size, nil
}

func evalSlice(c *ctensor, first, step, size []int) *ctensor {
	st := tensor.Strides(c.shape)
	base, pst := 0, make([]int, len(st))
	for d := range st {
		base += first[d] * st[d]
		pst[d] = step[d] * st[d]
	}
	return c.pick(size, gatherIndex(size, base, pst))
}

// reshapeTarget resolves Reshape's target (0 copies a dimension unless allowZero, -1 is
// inferred) for n elements of shape in.
func reshapeTarget(in []int, target []int, allowZero bool) ([]int, error) {
	out := slices.Clone(target)
	free, known := -1, 1
	for d, t := range out {
		switch {
		case t == 0 && !allowZero:
			if d >= len(in) {
				return nil, fmt.Errorf("Reshape copies dimension %d of %v", d, in)
			}
			out[d] = in[d]
		case t == -1:
			if free >= 0 {
				return nil, fmt.Errorf("Reshape target %v has two -1", target)
			}
			free = d
			continue
		case t < 0:
			return nil, fmt.Errorf("Reshape target %v", target)
		}
		known *= out[d]
	}
	n := tensor.Numel(in)
	if free >= 0 {
		if known == 0 || n%known != 0 {
			return nil, fmt.Errorf("cannot reshape %v to %v", in, target)
		}
		out[free] = n / known
	}
	if tensor.Numel(out) != n {
		return nil, fmt.Errorf("cannot reshape %v to %v", in, target)
	}
	return out, nil
}

// unsqueezeShape inserts size-1 axes at the given positions of the result.
func unsqueezeShape(in []int, axes []int) ([]int, error) {
	r := len(in) + len(axes)
	ins := make([]bool, r)
	for _, a := range axes {
		a2, err := axis(a, r)
		if err != nil {
			return nil, err
		}
		if ins[a2] {
			return nil, fmt.Errorf("Unsqueeze repeats axis %d", a2)
		}
		ins[a2] = true
	}
	out := make([]int, 0, r)
	k := 0
	for d := range r {
		if ins[d] {
			out = append(out, 1)
		} else {
			out = append(out, in[k])
			k++
		}
	}
	return out, nil
}

// squeezeShape removes the given size-1 axes (all of them when axes is nil).
func squeezeShape(in []int, axes []int) ([]int, error) {
	drop := make([]bool, len(in))
	if axes == nil {
		for d, s := range in {
			drop[d] = s == 1
		}
	}
	for _, a := range axes {
		a2, err := axis(a, len(in))
		if err != nil {
			return nil, err
		}
		if in[a2] != 1 {
			return nil, fmt.Errorf("Squeeze axis %d has size %d", a2, in[a2])
		}
		drop[a2] = true
	}
	var out []int
	for d, s := range in {
		if !drop[d] {
			out = append(out, s)
		}
	}
	return out, nil
}

func scalarInt(v int64) *ctensor { return &ctensor{shape: []int{}, i: []int64{v}} }

func vectorInt(v []int) *ctensor {
	c := &ctensor{shape: []int{len(v)}, i: make([]int64, len(v))}
	for k, x := range v {
		c.i[k] = int64(x)
	}
	return c
}

// castTo converts a constant to ONNX data type dt.
func castTo(c *ctensor, dt int64) (*ctensor, error) {
	switch dt {
	case dtFloat, dtDouble, dtFloat16:
		f := c.floats()
		if dt == dtFloat {
			f = slices.Clone(f)
			for k, v := range f {
				f[k] = float64(float32(v))
			}
		}
		return &ctensor{shape: c.shape, f: f}, nil
	case dtInt64, dtInt32, dtInt8, dtUint8, dtBool:
		out := &ctensor{shape: c.shape, i: make([]int64, c.len())}
		for k := range out.i {
			if c.isInt() {
				out.i[k] = c.i[k]
			} else {
				v := c.f[k]
				if math.IsNaN(v) || math.Abs(v) > 1<<62 {
					return nil, fmt.Errorf("Cast of %g to an integer", v)
				}
				out.i[k] = int64(v)
			}
			if dt == dtBool && out.i[k] != 0 {
				out.i[k] = 1
			}
		}
		return out, nil
	}
	return nil, fmt.Errorf("Cast to data type %d is not supported", dt)
}
