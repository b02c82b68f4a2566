package onnx

import (
	"fmt"
	"math"
	"slices"

	"move/internal/nn"
	"move/internal/onnx/onnxpb"
	"move/internal/tensor"
)

// value is what a graph edge holds while the graph runs: a constant known without the
// input, or a variable of the engine. A rank-4 variable is stored NHWC and stands for the
// NCHW tensor of the graph (the engine's layout); variables of other ranks are stored as the
// graph has them.
type value struct {
	c *ctensor
	v *nn.Var
	// fixed marks parameters stored in a layout of their own (transposed fully connected
	// weights): only the operation they belong to may use them.
	fixed bool
}

// nchw is the permutation from NHWC storage to NCHW and back.
var (
	toNCHW = []int{0, 3, 1, 2}
	toNHWC = []int{0, 2, 3, 1}
)

// shape returns the graph's (logical) shape of a value.
func (v *value) shape() []int {
	if v.c != nil {
		return v.c.shape
	}
	s := v.v.Shape()
	if len(s) == 4 {
		return []int{s[0], s[3], s[1], s[2]}
	}
	return s
}

// physAxis maps an axis of the graph's layout to the storage's.
func physAxis(a, rank int) int {
	if rank == 4 {
		return []int{0, 3, 1, 2}[a]
	}
	return a
}

// logical returns the variable in the graph's layout (NCHW for rank 4).
func logical(tp *nn.Tape, v *nn.Var) *nn.Var {
	s := v.Shape()
	if len(s) != 4 {
		return v
	}
	if s[1]*s[2] == 1 || s[3] == 1 { // both layouts order the data the same way
		return nn.Reshape(tp, v, s[0], s[3], s[1], s[2])
	}
	return nn.Transpose(tp, v, toNCHW...)
}

// stored returns a variable in the graph's layout as the engine stores it.
func stored(tp *nn.Tape, v *nn.Var) *nn.Var {
	s := v.Shape()
	if len(s) != 4 {
		return v
	}
	if s[2]*s[3] == 1 || s[1] == 1 {
		return nn.Reshape(tp, v, s[0], s[2], s[3], s[1])
	}
	return nn.Transpose(tp, v, toNHWC...)
}

// asVar turns a value into a stored variable of rank r: constants are materialised and lower
// ranks get leading axes of size 1 (NumPy broadcasting).
func asVar(tp *nn.Tape, v *value, r int) (*nn.Var, error) {
	if v.fixed {
		return nil, fmt.Errorf("a weight is used outside its layer")
	}
	s := v.shape()
	if len(s) > r {
		return nil, fmt.Errorf("rank %d where at most %d fits", len(s), r)
	}
	full := append(slices.Repeat([]int{1}, r-len(s)), s...)
	if v.c != nil {
		t := v.c.float32()
		t.Shape = full
		if r == 4 {
			t = tensor.ToNHWC(t)
		}
		return nn.Const(t), nil
	}
	if len(s) == r {
		return v.v, nil
	}
	return stored(tp, nn.Reshape(tp, logical(tp, v.v), full...)), nil
}

func (m *Model) run(tp *nn.Tape, x *nn.Var, train bool) (out *nn.Var, err error) {
	env := make(map[string]*value, len(m.nodes)+len(m.consts)+len(m.params)+1)
	for name, c := range m.consts {
		env[name] = &value{c: c}
	}
	for name, p := range m.params {
		r := m.role[name]
		env[name] = &value{v: p, fixed: r == roleGemmT || r == roleGemm}
	}
	env[m.input] = &value{v: x}
	var cur *onnxpb.NodeProto
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("node %q (%s): %v", cur.GetName(), cur.GetOpType(), r)
		}
	}()
	for _, n := range m.nodes {
		cur = n
		if err := m.apply(tp, n, env, train); err != nil {
			return nil, fmt.Errorf("node %q (%s): %w", n.GetName(), n.GetOpType(), err)
		}
	}
	o, ok := env[m.output]
	if !ok {
		return nil, fmt.Errorf("nothing computes the output %q", m.output)
	}
	if o.c != nil {
		return nil, fmt.Errorf("the output %q does not depend on the input", m.output)
	}
	return o.v, nil
}

// node is one node being run: the model, the tape, the values computed so far, and the
// node's inputs and outputs.
type node struct {
	m        *Model
	tp       *nn.Tape
	n        *onnxpb.NodeProto
	env      map[string]*value
	train    bool
	ins      []string
	outs     []string
	op       string
	x        *value // the first input (nil for Constant)
	xs       []int  // the activation's storage shape (operators on activations)
	allConst bool   // every input is known without the image
}

// in is input k (nil when absent).
func (c *node) in(k int) *value {
	if k >= len(c.ins) || c.ins[k] == "" {
		return nil
	}
	return c.env[c.ins[k]]
}

// need is input k, which must be present.
func (c *node) need(k int) (*value, error) {
	if v := c.in(k); v != nil {
		return v, nil
	}
	return nil, fmt.Errorf("input %d is missing", k)
}

// constIn is input k as a constant (nil when absent); an input that depends on the image is
// an error.
func (c *node) constIn(k int) (*ctensor, error) {
	v := c.in(k)
	if v == nil {
		return nil, nil
	}
	if v.c == nil {
		return nil, fmt.Errorf("input %d must be known without the image", k)
	}
	return v.c, nil
}

// set gives the node's output its value.
func (c *node) set(v *value) error { c.env[c.outs[0]] = v; return nil }

// setVar gives the node's output an activation.
func (c *node) setVar(v *nn.Var) error { return c.set(&value{v: v}) }

// operator runs one operator type. activation: it works on the image's activation only (not
// on constants, not on a weight used outside its layer).
type operator struct {
	run        func(*node) error
	activation bool
}

// operators are the supported operator types.
var operators map[string]operator

func init() {
	operators = map[string]operator{
		"Constant":           {opConstant, false},
		"Identity":           {opIdentity, false},
		"Dropout":            {opDropout, false},
		"Shape":              {opShape, false},
		"Size":               {opSize, false},
		"Cast":               {opCast, false},
		"ConstantOfShape":    {opConstantOfShape, false},
		"Gather":             {opGather, false},
		"Unsqueeze":          {opSqueeze, false},
		"Squeeze":            {opSqueeze, false},
		"Reshape":            {opReshape, false},
		"Flatten":            {opFlatten, false},
		"Transpose":          {opTranspose, false},
		"Concat":             {opConcat, false},
		"Slice":              {opSlice, false},
		"Add":                {opArithmetic, false},
		"Sub":                {opArithmetic, false},
		"Mul":                {opArithmetic, false},
		"Div":                {opArithmetic, false},
		"Relu":               {opRelu, true},
		"LeakyRelu":          {opLeakyRelu, true},
		"Sigmoid":            {opSigmoid, true},
		"Tanh":               {opTanh, true},
		"Clip":               {opClip, true},
		"Softmax":            {opSoftmax, true},
		"LogSoftmax":         {opSoftmax, true},
		"Conv":               {opConv, true},
		"BatchNormalization": {opBatchNormalization, true},
		"MaxPool":            {opPool, true},
		"AveragePool":        {opPool, true},
		"GlobalAveragePool":  {opGlobalAveragePool, true},
		"Gemm":               {opGemm, true},
		"MatMul":             {opMatMul, true},
		"Pad":                {opPad, true},
	}
}

// apply runs one node.
func (m *Model) apply(tp *nn.Tape, n *onnxpb.NodeProto, env map[string]*value, train bool) error {
	op, ok := operators[n.GetOpType()]
	if !ok {
		return fmt.Errorf("operator %s is not supported", n.GetOpType())
	}
	c := &node{m: m, tp: tp, n: n, env: env, train: train, ins: n.GetInput(), outs: n.GetOutput(), op: n.GetOpType()}
	if len(c.outs) == 0 {
		return fmt.Errorf("no outputs")
	}
	for _, o := range c.outs[1:] {
		if o != "" && !slices.Contains([]string{"MaxPool", "Dropout", "BatchNormalization"}, c.op) {
			return fmt.Errorf("more than one output")
		}
	}
	x, err := c.need(0)
	if err != nil && c.op != "Constant" {
		return err
	}
	c.x = x
	// A node whose inputs are all constants is evaluated once per run on the constants.
	c.allConst = true
	for k := range c.ins {
		if v := c.in(k); v != nil && v.c == nil {
			c.allConst = false
		}
	}
	if op.activation {
		if x.c != nil {
			return fmt.Errorf("%s on a constant is not supported", c.op)
		}
		if x.fixed {
			return fmt.Errorf("a weight is used outside its layer")
		}
		c.xs = x.v.Shape()
	}
	return op.run(c)
}

// opConstant runs Constant.
func opConstant(nd *node) error {
	n := nd.n
	c, err := constantAttr(n)
	if err != nil {
		return err
	}
	return nd.set(&value{c: c})
}

// opIdentity runs Identity.
func opIdentity(nd *node) error {
	x := nd.x
	return nd.set(x)
}

// opDropout runs Dropout.
func opDropout(nd *node) error {
	m, tp, n, x, outs, train := nd.m, nd.tp, nd.n, nd.x, nd.outs, nd.train
	if len(outs) > 1 && m.used[outs[1]] {
		return fmt.Errorf("its mask output is used; not supported")
	}
	if !train || x.c != nil {
		return nd.set(x)
	}
	ratio := attrFloat(n, "ratio", 0.5)
	if c, err := nd.constIn(1); err != nil {
		return err
	} else if c != nil && c.len() == 1 {
		ratio = float32(c.floats()[0])
	}
	return nd.setVar(nn.Dropout(tp, x.v, ratio, true, m.rng))
}

// opShape runs Shape.
func opShape(nd *node) error {
	n, x := nd.n, nd.x
	s := x.shape()
	lo, hi := int(attrInt(n, "start", 0)), int(attrInt(n, "end", int64(len(s))))
	lo, hi = clampRange(lo, len(s)), clampRange(hi, len(s))
	if hi < lo {
		hi = lo
	}
	return nd.set(&value{c: vectorInt(s[lo:hi])})
}

// opSize runs Size.
func opSize(nd *node) error {
	x := nd.x
	return nd.set(&value{c: scalarInt(int64(tensor.Numel(x.shape())))})
}

// opCast runs Cast.
func opCast(nd *node) error {
	n, x := nd.n, nd.x
	to := attrInt(n, "to", 0)
	if x.c != nil {
		c, err := castTo(x.c, to)
		if err != nil {
			return err
		}
		return nd.set(&value{c: c})
	}
	if to != dtFloat {
		return fmt.Errorf("Cast of an activation to type %d is not supported", to)
	}
	return nd.set(x)
}

// opConstantOfShape runs ConstantOfShape.
func opConstantOfShape(nd *node) error {
	n, x := nd.n, nd.x
	if x.c == nil {
		return fmt.Errorf("the shape must be known without the image")
	}
	shape := x.c.ints()
	if _, n, err := checkShape(dims64(shape), "ConstantOfShape"); err != nil {
		return err
	} else if n > maxBuilt {
		return fmt.Errorf("shape %v is too large", shape)
	}
	fill := &ctensor{shape: []int{1}, f: []float64{0}}
	if a := attr(n, "value"); a != nil && a.GetT() != nil {
		c, err := decodeTensor(a.GetT(), nil)
		if err != nil {
			return err
		}
		if c.len() != 1 {
			return fmt.Errorf("value has %d elements", c.len())
		}
		fill = c
	}
	out := &ctensor{shape: shape}
	if fill.isInt() {
		out.i = slices.Repeat([]int64{fill.i[0]}, tensor.Numel(shape))
	} else {
		out.f = slices.Repeat([]float64{fill.f[0]}, tensor.Numel(shape))
	}
	return nd.set(&value{c: out})
}

// opGather runs Gather.
func opGather(nd *node) error {
	n, x, allConst := nd.n, nd.x, nd.allConst
	idx, err := nd.need(1)
	if err != nil {
		return err
	}
	if !allConst {
		return fmt.Errorf("Gather on an activation is not supported")
	}
	c, err := evalGather(x.c, idx.c, int(attrInt(n, "axis", 0)))
	if err != nil {
		return err
	}
	return nd.set(&value{c: c})
}

// opSqueeze runs Unsqueeze, Squeeze.
func opSqueeze(nd *node) error {
	m, tp, n, x, op := nd.m, nd.tp, nd.n, nd.x, nd.op
	var err error
	axes := attrInts(n, "axes")
	if m.opset >= 13 {
		c, err := nd.constIn(1)
		if err != nil {
			return err
		}
		axes = nil
		if c != nil {
			axes = c.ints()
		}
	}
	var shape []int
	if op == "Unsqueeze" {
		shape, err = unsqueezeShape(x.shape(), axes)
	} else {
		shape, err = squeezeShape(x.shape(), axes)
	}
	if err != nil {
		return err
	}
	return m.reshape(tp, x, shape, nd.set)
}

// opReshape runs Reshape.
func opReshape(nd *node) error {
	m, tp, n, x := nd.m, nd.tp, nd.n, nd.x
	c, err := nd.constIn(1)
	if err != nil {
		return err
	}
	if c == nil || !c.isInt() {
		return fmt.Errorf("the target shape must be integers known without the image")
	}
	shape, err := reshapeTarget(x.shape(), c.ints(), attrInt(n, "allowzero", 0) == 1)
	if err != nil {
		return err
	}
	return m.reshape(tp, x, shape, nd.set)
}

// opFlatten runs Flatten.
func opFlatten(nd *node) error {
	m, tp, n, x := nd.m, nd.tp, nd.n, nd.x
	s := x.shape()
	a := int(attrInt(n, "axis", 1))
	if a < 0 {
		a += len(s)
	}
	if a < 0 || a > len(s) {
		return fmt.Errorf("axis %d for rank %d", a, len(s))
	}
	return m.reshape(tp, x, []int{tensor.Numel(s[:a]), tensor.Numel(s[a:])}, nd.set)
}

// opTranspose runs Transpose.
func opTranspose(nd *node) error {
	tp, n, x := nd.tp, nd.n, nd.x
	r := len(x.shape())
	perm := attrInts(n, "perm")
	if perm == nil {
		for d := r - 1; d >= 0; d-- {
			perm = append(perm, d)
		}
	}
	if err := checkPerm(perm, r); err != nil {
		return err
	}
	if x.c != nil {
		c, err := evalTranspose(x.c, perm)
		if err != nil {
			return err
		}
		return nd.set(&value{c: c})
	}
	if x.fixed {
		return fmt.Errorf("a weight is used outside its layer")
	}
	if r == 4 { // compose with the storage permutations
		q := make([]int, 4)
		for i := range 4 {
			q[i] = physAxis(perm[toNHWC[i]], 4)
		}
		return nd.setVar(nn.Transpose(tp, x.v, q...))
	}
	return nd.setVar(nn.Transpose(tp, x.v, perm...))
}

// opConcat runs Concat.
func opConcat(nd *node) error {
	tp, n, x, ins, allConst := nd.tp, nd.n, nd.x, nd.ins, nd.allConst
	var err error
	var vs []*value
	for k := range ins {
		v, err := nd.need(k)
		if err != nil {
			return err
		}
		vs = append(vs, v)
	}
	a := int(attrInt(n, "axis", 0))
	if allConst {
		cs := make([]*ctensor, len(vs))
		for k, v := range vs {
			cs[k] = v.c
		}
		c, err := evalConcat(cs, a)
		if err != nil {
			return err
		}
		return nd.set(&value{c: c})
	}
	r := len(x.shape())
	if a, err = axis(a, r); err != nil {
		return err
	}
	if physAxis(a, r) != r-1 {
		return fmt.Errorf("concatenation on axis %d of rank %d is not supported (only channels)", a, r)
	}
	var xs []*nn.Var
	for _, v := range vs {
		xv, err := asVar(tp, v, r)
		if err != nil {
			return err
		}
		xs = append(xs, xv)
	}
	return nd.setVar(nn.Concat(tp, xs...))
}

// opSlice runs Slice.
func opSlice(nd *node) error {
	m, tp, n, x := nd.m, nd.tp, nd.n, nd.x
	var starts, ends, axes, steps []int
	if m.opset < 10 {
		starts, ends, axes = attrInts(n, "starts"), attrInts(n, "ends"), attrInts(n, "axes")
	} else {
		for k, p := range []*[]int{&starts, &ends, &axes, &steps} {
			c, err := nd.constIn(k + 1)
			if err != nil {
				return err
			}
			if c != nil {
				*p = c.ints()
			}
		}
	}
	first, step, size, err := sliceSpec(x.shape(), starts, ends, axes, steps)
	if err != nil {
		return err
	}
	if x.c != nil {
		return nd.set(&value{c: evalSlice(x.c, first, step, size)})
	}
	if x.fixed {
		return fmt.Errorf("a weight is used outside its layer")
	}
	if xs := x.v.Shape(); len(xs) == 4 {
		first, step, size = permuteInts(first, toNHWC), permuteInts(step, toNHWC), permuteInts(size, toNHWC)
	}
	return nd.setVar(nn.Slice(tp, x.v, first, step, size))
}

// opArithmetic runs Add, Sub, Mul, Div.
func opArithmetic(nd *node) error {
	tp, x, op, allConst := nd.tp, nd.x, nd.op, nd.allConst
	y, err := nd.need(1)
	if err != nil {
		return err
	}
	if allConst {
		c, err := evalBinary(op, x.c, y.c)
		if err != nil {
			return err
		}
		return nd.set(&value{c: c})
	}
	shape, err := broadcastShape(x.shape(), y.shape())
	if err != nil {
		return err
	}
	a, err := asVar(tp, x, len(shape))
	if err != nil {
		return err
	}
	b, err := asVar(tp, y, len(shape))
	if err != nil {
		return err
	}
	if op == "Add" && tensor.SameShape(a.Shape(), b.Shape()) {
		return nd.setVar(nn.Add(tp, a, b))
	}
	return nd.setVar(nn.Binary(tp, op, a, b))
}

// opRelu runs Relu.
func opRelu(nd *node) error {
	tp, x := nd.tp, nd.x
	return nd.setVar(nn.ReLU(tp, x.v))
}

// opLeakyRelu runs LeakyRelu.
func opLeakyRelu(nd *node) error {
	tp, n, x := nd.tp, nd.n, nd.x
	return nd.setVar(nn.LeakyReLU(tp, x.v, attrFloat(n, "alpha", 0.01)))
}

// opSigmoid runs Sigmoid.
func opSigmoid(nd *node) error {
	tp, x := nd.tp, nd.x
	return nd.setVar(nn.Sigmoid(tp, x.v))
}

// opTanh runs Tanh.
func opTanh(nd *node) error {
	tp, x := nd.tp, nd.x
	return nd.setVar(nn.Tanh(tp, x.v))
}

// opClip runs Clip.
func opClip(nd *node) error {
	m, tp, n, x := nd.m, nd.tp, nd.n, nd.x
	lo, hi := float32(math.Inf(-1)), nn.Inf
	if m.opset < 11 {
		lo, hi = attrFloat(n, "min", lo), attrFloat(n, "max", hi)
	} else {
		for k, p := range []*float32{&lo, &hi} {
			c, err := nd.constIn(k + 1)
			if err != nil {
				return err
			}
			if c != nil {
				if c.len() != 1 {
					return fmt.Errorf("bound %d has %d elements", k+1, c.len())
				}
				*p = float32(c.floats()[0])
			}
		}
	}
	if lo == 0 && math.IsInf(float64(hi), 1) {
		return nd.setVar(nn.ReLU(tp, x.v))
	}
	return nd.setVar(nn.Clip(tp, x.v, lo, hi))
}

// opSoftmax runs Softmax, LogSoftmax.
func opSoftmax(nd *node) error {
	m, tp, n, x, op, xs := nd.m, nd.tp, nd.n, nd.x, nd.op, nd.xs
	a := int(attrInt(n, "axis", map[bool]int64{true: -1, false: 1}[m.opset >= 13]))
	if len(xs) != 2 || (a != 1 && a != -1) {
		return fmt.Errorf("%s over axis %d of rank %d is not supported", op, a, len(xs))
	}
	if op == "Softmax" {
		return nd.setVar(nn.Softmax(tp, x.v))
	}
	return nd.setVar(nn.LogSoftmax(tp, x.v))
}

// opConv runs Conv.
func opConv(nd *node) error {
	m, tp, n, x, env := nd.m, nd.tp, nd.n, nd.x, nd.env
	return m.conv(tp, n, x.v, env, nd.setVar)
}

// opBatchNormalization runs BatchNormalization.
func opBatchNormalization(nd *node) error {
	m, tp, n, x, outs, train, xs := nd.m, nd.tp, nd.n, nd.x, nd.outs, nd.train, nd.xs
	for _, o := range outs[1:] {
		if m.used[o] {
			return fmt.Errorf("its training outputs are used; not supported")
		}
	}
	bn := m.bns[n]
	if c := xs[len(xs)-1]; c != bn.Gamma.Value.Len() {
		return fmt.Errorf("input %v has %d channels, the batch norm %d", x.shape(), c, bn.Gamma.Value.Len())
	}
	return nd.setVar(nn.BatchNormOp(tp, x.v, bn, train))
}

// opPool runs MaxPool, AveragePool.
func opPool(nd *node) error {
	tp, n, x, outs, op, xs := nd.tp, nd.n, nd.x, nd.outs, nd.op, nd.xs
	for _, o := range outs[1:] {
		if o != "" {
			return fmt.Errorf("the indices output is not supported")
		}
	}
	if len(xs) != 4 {
		return fmt.Errorf("input of rank %d", len(xs))
	}
	k, s, p, err := window(n, 0)
	if err != nil {
		return err
	}
	if attrInt(n, "ceil_mode", 0) != 0 {
		return fmt.Errorf("ceil_mode is not supported")
	}
	if op == "MaxPool" {
		if attrInt(n, "storage_order", 0) != 0 {
			return fmt.Errorf("storage_order is not supported")
		}
		return nd.setVar(nn.MaxPool2D(tp, x.v, k, s, p))
	}
	if p > 0 && attrInt(n, "count_include_pad", 0) == 0 {
		return fmt.Errorf("padded average pooling that excludes the padding is not supported")
	}
	return nd.setVar(nn.AvgPool2D(tp, x.v, k, s, p))
}

// opGlobalAveragePool runs GlobalAveragePool.
func opGlobalAveragePool(nd *node) error {
	tp, x, xs := nd.tp, nd.x, nd.xs
	if len(xs) != 4 {
		return fmt.Errorf("input of rank %d", len(xs))
	}
	return nd.setVar(nn.Reshape(tp, nn.GlobalAvgPool(tp, x.v), xs[0], 1, 1, xs[3]))
}

// opGemm runs Gemm.
func opGemm(nd *node) error {
	m, tp, n, x, env := nd.m, nd.tp, nd.n, nd.x, nd.env
	if attrInt(n, "transA", 0) != 0 {
		return fmt.Errorf("transA is not supported")
	}
	if attrFloat(n, "alpha", 1) != 1 || attrFloat(n, "beta", 1) != 1 {
		return fmt.Errorf("alpha and beta other than 1 are not supported")
	}
	return m.linear(tp, n, x.v, env, nd.setVar)
}

// opMatMul runs MatMul.
func opMatMul(nd *node) error {
	m, tp, n, x, env := nd.m, nd.tp, nd.n, nd.x, nd.env
	return m.linear(tp, n, x.v, env, nd.setVar)
}

// opPad runs Pad.
func opPad(nd *node) error {
	m, tp, n, x := nd.m, nd.tp, nd.n, nd.x
	return m.pad(tp, n, x.v, nd.in, nd.setVar)
}

func clampRange(a, r int) int {
	if a < 0 {
		a += r
	}
	return min(max(a, 0), r)
}

// permuteInts returns v reordered by perm: out[d] = v[perm[d]].
func permuteInts(v, perm []int) []int {
	out := make([]int, len(perm))
	for d, p := range perm {
		out[d] = v[p]
	}
	return out
}

// reshape gives x the graph shape shape.
func (m *Model) reshape(tp *nn.Tape, x *value, shape []int, set func(*value) error) error {
	if tensor.Numel(shape) != tensor.Numel(x.shape()) {
		return fmt.Errorf("cannot reshape %v to %v", x.shape(), shape)
	}
	if x.c != nil {
		return set(&value{c: x.c.reshaped(shape)})
	}
	if x.fixed {
		return fmt.Errorf("a weight is used outside its layer")
	}
	return set(&value{v: stored(tp, nn.Reshape(tp, logical(tp, x.v), shape...))})
}

// window reads a square kernel, equal strides and symmetric equal padding, as the engine's
// convolutions and pools take them.
func window(n *onnxpb.NodeProto, kernelFromWeight int) (k, s, p int, err error) {
	ks := attrInts(n, "kernel_shape")
	switch {
	case ks == nil && kernelFromWeight > 0:
		k = kernelFromWeight
	case len(ks) == 2 && ks[0] == ks[1]:
		k = ks[0]
	default:
		return 0, 0, 0, fmt.Errorf("kernel %v is not supported (square 2-D kernels only)", ks)
	}
	s = 1
	if st := attrInts(n, "strides"); st != nil {
		if len(st) != 2 || st[0] != st[1] || st[0] < 1 {
			return 0, 0, 0, fmt.Errorf("strides %v are not supported (equal strides only)", st)
		}
		s = st[0]
	}
	if d := attrInts(n, "dilations"); d != nil && (len(d) != 2 || d[0] != 1 || d[1] != 1) {
		return 0, 0, 0, fmt.Errorf("dilations %v are not supported", d)
	}
	if ap := attrString(n, "auto_pad", "NOTSET"); ap != "NOTSET" && ap != "VALID" {
		return 0, 0, 0, fmt.Errorf("auto_pad %s is not supported", ap)
	}
	if ps := attrInts(n, "pads"); ps != nil {
		if len(ps) != 4 || ps[0] != ps[1] || ps[0] != ps[2] || ps[0] != ps[3] || ps[0] < 0 {
			return 0, 0, 0, fmt.Errorf("pads %v are not supported (the same on every side only)", ps)
		}
		p = ps[0]
	}
	maxK := 1024 // pools
	if kernelFromWeight > 0 {
		maxK = 16 // convolutions: im2col grows with the kernel's area
	}
	if k < 1 || k > maxK || s > maxK || p > maxK {
		return 0, 0, 0, fmt.Errorf("kernel %d stride %d pad %d", k, s, p)
	}
	return k, s, p, nil
}

func (m *Model) conv(tp *nn.Tape, n *onnxpb.NodeProto, x *nn.Var, env map[string]*value, set func(*nn.Var) error) error {
	ins := n.GetInput()
	w := m.params[ins[1]]
	if attrInt(n, "group", 1) != 1 {
		return fmt.Errorf("grouped convolution (group %d) is not supported", attrInt(n, "group", 1))
	}
	ws, xs := w.Shape(), x.Shape()
	if len(xs) != 4 {
		return fmt.Errorf("input of rank %d", len(xs))
	}
	if ws[1] != ws[2] {
		return fmt.Errorf("kernel %dx%d is not supported (square kernels only)", ws[1], ws[2])
	}
	k, s, p, err := window(n, ws[1])
	if err != nil {
		return err
	}
	if k != ws[1] {
		return fmt.Errorf("kernel_shape %d does not match the weight %v", k, ws)
	}
	if ws[3] != xs[3] {
		return fmt.Errorf("input has %d channels, the weight %d", xs[3], ws[3])
	}
	if xs[1]+2*p < k || xs[2]+2*p < k {
		return fmt.Errorf("kernel %d does not fit input %v", k, x.Shape())
	}
	var b *nn.Var
	if len(ins) > 2 && ins[2] != "" {
		b = m.params[ins[2]]
		if b.Value.Len() != ws[0] || len(b.Shape()) != 1 {
			return fmt.Errorf("bias %v for %d output channels", b.Shape(), ws[0])
		}
	}
	return set(nn.Conv2D(tp, x, w, b, s, p))
}

func (m *Model) linear(tp *nn.Tape, n *onnxpb.NodeProto, x *nn.Var, env map[string]*value, set func(*nn.Var) error) error {
	ins := n.GetInput()
	if len(ins) < 2 {
		return fmt.Errorf("no weight")
	}
	w := m.params[ins[1]]
	xs := x.Shape()
	if len(xs) != 2 {
		return fmt.Errorf("input of rank %d is not supported (flatten it first)", len(xs))
	}
	if xs[1] != w.Shape()[1] {
		return fmt.Errorf("input %v does not fit the weight (%d inputs)", xs, w.Shape()[1])
	}
	var b *nn.Var
	if len(ins) > 2 && ins[2] != "" {
		if b = m.params[ins[2]]; b == nil {
			return fmt.Errorf("bias %q is computed, not stored; not supported", ins[2])
		}
		if b.Value.Len() != w.Shape()[0] {
			return fmt.Errorf("bias %v for %d outputs", b.Shape(), w.Shape()[0])
		}
	}
	return set(nn.Linear(tp, x, w, b))
}

func (m *Model) pad(tp *nn.Tape, n *onnxpb.NodeProto, x *nn.Var, in func(int) *value, set func(*nn.Var) error) error {
	if mode := attrString(n, "mode", "constant"); mode != "constant" {
		return fmt.Errorf("mode %s is not supported", mode)
	}
	pads := attrInts(n, "pads")
	fill := float64(attrFloat(n, "value", 0))
	if m.opset >= 11 {
		p := in(1)
		if p == nil || p.c == nil {
			return fmt.Errorf("the pads must be known without the image")
		}
		pads = p.c.ints()
		if v := in(2); v != nil {
			if v.c == nil || v.c.len() != 1 {
				return fmt.Errorf("the padding value must be a known scalar")
			}
			fill = v.c.floats()[0]
		}
		if in(3) != nil {
			return fmt.Errorf("padding selected axes is not supported")
		}
	}
	if fill != 0 {
		return fmt.Errorf("padding with %g is not supported (zeros only)", fill)
	}
	r := len(x.Shape())
	if len(pads) != 2*r {
		return fmt.Errorf("%d pads for rank %d", len(pads), r)
	}
	begin, end := pads[:r], pads[r:]
	size := 1
	for d, s := range x.Shape() {
		if begin[d] < 0 || end[d] < 0 {
			return fmt.Errorf("negative pads %v are not supported", pads)
		}
		size *= s + begin[physAxisInv(d, r)] + end[physAxisInv(d, r)]
		if size > maxActivation {
			return fmt.Errorf("pads %v make a tensor of more than %d elements", pads, maxActivation)
		}
	}
	if r == 4 {
		begin, end = permuteInts(begin, toNHWC), permuteInts(end, toNHWC)
	}
	return set(nn.Pad(tp, x, begin, end))
}

// physAxisInv maps a storage axis to the graph's.
func physAxisInv(d, r int) int {
	if r == 4 {
		return toNHWC[d]
	}
	return d
}

// constantAttr reads a Constant node's value.
func constantAttr(n *onnxpb.NodeProto) (*ctensor, error) {
	for _, a := range n.GetAttribute() {
		switch a.GetName() {
		case "value":
			if a.GetT() == nil {
				return nil, fmt.Errorf("value is not a tensor")
			}
			return decodeTensor(a.GetT(), nil)
		case "value_float":
			return &ctensor{shape: []int{}, f: []float64{float64(a.GetF())}}, nil
		case "value_floats":
			c := &ctensor{shape: []int{len(a.GetFloats())}, f: []float64{}}
			for _, v := range a.GetFloats() {
				c.f = append(c.f, float64(v))
			}
			return c, nil
		case "value_int":
			return scalarInt(a.GetI()), nil
		case "value_ints":
			return &ctensor{shape: []int{len(a.GetInts())}, i: append([]int64{}, a.GetInts()...)}, nil
		}
	}
	return nil, fmt.Errorf("no value")
}
