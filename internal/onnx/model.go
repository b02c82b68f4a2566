package onnx

import (
	"cmp"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"

	"google.golang.org/protobuf/proto"

	"move/internal/models"
	"move/internal/nn"
	"move/internal/onnx/onnxpb"
	"move/internal/tensor"
)

// MaxFileSize bounds the size of a model file read into memory (external data is read per
// tensor, from files beside it).
const MaxFileSize = 1 << 31

// Opsets this importer understands (the default domain).
const (
	MinOpset = 9
	MaxOpset = 18
)

// ErrSymbolicSize is returned when the graph's input has a symbolic height or width and
// Options.InputSize does not give it.
var ErrSymbolicSize = errors.New("the input has a symbolic image size and none was given")

// Options adjust an import.
type Options struct {
	// InputSize is the image size when the graph's input has a symbolic height or width.
	InputSize int
	// MaxInputSize refuses graphs for larger images (default 1024).
	MaxInputSize int
}

// Model is an ONNX graph imported into the engine. It is a models.Model: its forward pass
// runs the graph's nodes with the engine's operations, so gradients reach every weight. Its
// parameters are the graph's weight initializers (convolution kernels, batch-norm scales and
// shifts, fully connected weights and biases) under their ONNX names; running statistics are
// buffers; everything else is a constant.
type Model struct {
	proto   *onnxpb.ModelProto
	opset   int64
	nodes   []*onnxpb.NodeProto
	input   string
	output  string
	inC     int
	inH     int
	inW     int
	classes int
	store   *nn.Store
	consts  map[string]*ctensor
	params  map[string]*nn.Var
	role    map[string]string // initializer name -> role (see roles)
	bns     map[*onnxpb.NodeProto]*nn.BatchNorm
	rng     *rand.Rand
	notes   []string
	meta    map[string]string
	ext     externalReader
	opts    Options
	used    map[string]bool // values some node reads, or the graph's output
}

// Clone implements models.Cloner: the same graph with a copy of the current weights.
func (m *Model) Clone() (models.Model, error) {
	c, err := build(m.proto, m.ext, m.opts)
	if err != nil {
		return nil, err
	}
	if err := c.store.Load(m.store.Map()); err != nil {
		return nil, err
	}
	return c, nil
}

// Arch names imported graphs.
const Arch = "onnx"

// Store implements models.Model.
func (m *Model) Store() *nn.Store { return m.store }

// Arch implements models.Model.
func (m *Model) Arch() string { return Arch }

// Classes implements models.Model.
func (m *Model) Classes() int { return m.classes }

// InputSize is the image size the graph takes.
func (m *Model) InputSize() int { return m.inH }

// Metadata returns the file's metadata_props.
func (m *Model) Metadata() map[string]string { return m.meta }

// Notes says what the importer did beyond a literal reading (a dropped final Softmax, ...).
func (m *Model) Notes() []string { return m.notes }

// Opset is the graph's operator set version.
func (m *Model) Opset() int64 { return m.opset }

// ReadFile imports an ONNX file; external data is read from its folder.
func ReadFile(path string, opts Options) (*Model, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, MaxFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", path, err)
	}
	if len(b) > MaxFileSize {
		return nil, fmt.Errorf("%s: larger than %d bytes (keep the weights as external data)", path, MaxFileSize)
	}
	m, err := Import(b, filepath.Dir(path), opts)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return m, nil
}

// Import reads an ONNX model from its bytes; dir is the folder external data lives in ("" for
// none).
func Import(b []byte, dir string, opts Options) (*Model, error) {
	var mp onnxpb.ModelProto
	if err := proto.Unmarshal(b, &mp); err != nil {
		return nil, fmt.Errorf("not an ONNX model: %w", err)
	}
	return build(&mp, dirReader(dir), opts)
}

// roles of initializers.
const (
	roleConst    = ""
	roleConvW    = "conv-weight"   // OIHW in the file, [O][KH][KW][I] in the store
	roleParam    = "param"         // as in the file
	roleBias     = "bias"          // [M] or [1, M] in the file, [M] in the store
	roleGemmT    = "gemm-weight-t" // [K][M] in the file (Gemm transB=0 or MatMul), [M][K] in the store
	roleGemm     = "gemm-weight"   // [M][K] in both
	roleBuffer   = "buffer"        // batch-norm running statistics
	maxNodes     = 1 << 20
	maxValueName = 4096
)

func build(mp *onnxpb.ModelProto, ext externalReader, opts Options) (*Model, error) {
	g := mp.GetGraph()
	if g == nil {
		return nil, fmt.Errorf("no graph")
	}
	m := &Model{
		proto: mp, consts: map[string]*ctensor{}, params: map[string]*nn.Var{}, role: map[string]string{},
		bns: map[*onnxpb.NodeProto]*nn.BatchNorm{}, store: nn.NewStore(), meta: map[string]string{},
		rng: rand.New(rand.NewPCG(1, 2)), ext: ext, opts: opts,
	}
	for _, p := range mp.GetMetadataProps() {
		m.meta[p.GetKey()] = p.GetValue()
	}
	m.opset = -1
	for _, o := range mp.GetOpsetImport() {
		switch o.GetDomain() {
		case "", "ai.onnx":
			m.opset = o.GetVersion()
		default:
			return nil, fmt.Errorf("operator domain %q is not supported", o.GetDomain())
		}
	}
	if m.opset < MinOpset || m.opset > MaxOpset {
		return nil, fmt.Errorf("opset %d is not supported (%d to %d)", m.opset, MinOpset, MaxOpset)
	}
	if len(g.GetNode()) > maxNodes {
		return nil, fmt.Errorf("%d nodes", len(g.GetNode()))
	}
	if len(g.GetSparseInitializer()) > 0 {
		return nil, fmt.Errorf("sparse initializers are not supported")
	}
	// Initializers.
	inits := map[string]*ctensor{}
	var initOrder []string
	for _, t := range g.GetInitializer() {
		name := t.GetName()
		if name == "" {
			return nil, fmt.Errorf("an initializer has no name")
		}
		if _, dup := inits[name]; dup {
			return nil, fmt.Errorf("initializer %q defined twice", name)
		}
		c, err := decodeTensor(t, ext)
		if err != nil {
			return nil, err
		}
		inits[name] = c
		initOrder = append(initOrder, name)
	}
	// The image input: the first graph input that is not an initializer.
	for _, in := range g.GetInput() {
		if _, ok := inits[in.GetName()]; !ok {
			if m.input != "" {
				return nil, fmt.Errorf("more than one input (%q and %q); an image classifier takes one", m.input, in.GetName())
			}
			m.input = in.GetName()
			if err := m.inputShape(in, opts); err != nil {
				return nil, err
			}
		}
	}
	if m.input == "" {
		return nil, fmt.Errorf("the graph has no input")
	}
	if len(g.GetOutput()) < 1 {
		return nil, fmt.Errorf("the graph has no output")
	}
	m.output = g.GetOutput()[0].GetName()
	// Nodes in an order where every value is defined before use (cycles are refused).
	nodes, err := topoSort(g.GetNode(), m.input, inits)
	if err != nil {
		return nil, err
	}
	m.nodes = nodes
	m.used = map[string]bool{m.output: true}
	for _, n := range nodes {
		for _, in := range n.GetInput() {
			if in != "" { // an absent optional input
				m.used[in] = true
			}
		}
	}
	if err := m.assignRoles(inits); err != nil {
		return nil, err
	}
	// Parameters in order of first use, so the store lists them as the graph runs.
	added := map[string]bool{}
	for _, n := range m.nodes {
		for _, name := range n.GetInput() {
			r, ok := m.role[name]
			if !ok || added[name] || r == roleConst {
				continue
			}
			added[name] = true
			if err := m.addTensor(name, r, inits[name]); err != nil {
				return nil, err
			}
		}
	}
	for _, name := range initOrder {
		if !added[name] {
			m.consts[name] = inits[name]
		}
	}
	if err := m.prepareBatchNorms(); err != nil {
		return nil, err
	}
	m.dropFinalSoftmax()
	// A dry run at the input size checks every shape once; afterwards Forward cannot fail on
	// inputs of that size.
	x := nn.Const(tensor.New(1, m.inH, m.inW, m.inC))
	tp := nn.NewTape(false)
	tp.Limit(maxActivation)
	y, err := m.run(tp, x, false)
	if err != nil {
		return nil, err
	}
	if s := y.Shape(); len(s) != 2 || s[0] != 1 || s[1] < 2 {
		return nil, fmt.Errorf("output %q has shape %v for one image; want [1, classes]", m.output, s)
	}
	m.classes = y.Shape()[1]
	return m, nil
}

// inputShape reads the image input's declared shape [N, C, H, W].
func (m *Model) inputShape(in *onnxpb.ValueInfoProto, opts Options) error {
	tt := in.GetType().GetTensorType()
	if tt == nil || tt.GetShape() == nil {
		return fmt.Errorf("input %q has no tensor shape", in.GetName())
	}
	if et := tt.GetElemType(); et != dtFloat {
		return fmt.Errorf("input %q has element type %d; want float (1)", in.GetName(), et)
	}
	dims := tt.GetShape().GetDim()
	if len(dims) != 4 {
		return fmt.Errorf("input %q has rank %d; want an NCHW image batch", in.GetName(), len(dims))
	}
	val := func(k int) int {
		if d, ok := dims[k].GetValue().(*onnxpb.TensorShapeProto_Dimension_DimValue); ok {
			return int(d.DimValue)
		}
		return 0
	}
	m.inC, m.inH, m.inW = val(1), val(2), val(3)
	if m.inC != 3 {
		return fmt.Errorf("input %q has %d channels; move feeds RGB images (3 channels)", in.GetName(), m.inC)
	}
	if opts.InputSize > 0 {
		if (m.inH > 0 && m.inH != opts.InputSize) || (m.inW > 0 && m.inW != opts.InputSize) {
			return fmt.Errorf("input %q is %dx%d, not %d as asked", in.GetName(), m.inH, m.inW, opts.InputSize)
		}
		m.inH, m.inW = opts.InputSize, opts.InputSize
	}
	if m.inH <= 0 || m.inW <= 0 {
		return fmt.Errorf("input %q: %w", in.GetName(), ErrSymbolicSize)
	}
	if m.inH != m.inW {
		return fmt.Errorf("input %q is %dx%d; only square images are supported", in.GetName(), m.inH, m.inW)
	}
	if limit := cmp.Or(opts.MaxInputSize, 1024); m.inH > limit {
		return fmt.Errorf("input %q is %dx%d", in.GetName(), m.inH, m.inW)
	}
	return nil
}

// topoSort orders nodes so that every input is produced before it is used.
func topoSort(nodes []*onnxpb.NodeProto, input string, inits map[string]*ctensor) ([]*onnxpb.NodeProto, error) {
	producer := map[string]int{}
	for k, n := range nodes {
		for _, o := range n.GetOutput() {
			if o == "" {
				continue
			}
			if len(o) > maxValueName {
				return nil, fmt.Errorf("a value name of %d bytes", len(o))
			}
			if _, dup := producer[o]; dup || o == input || inits[o] != nil {
				return nil, fmt.Errorf("value %q is defined twice", o)
			}
			producer[o] = k
		}
	}
	state := make([]uint8, len(nodes)) // 0 new, 1 in progress, 2 done
	var order []*onnxpb.NodeProto
	// Iterative depth-first search (a deep graph must not overflow the stack).
	type frame struct{ node, next int }
	for start := range nodes {
		if state[start] != 0 {
			continue
		}
		stack := []frame{{start, 0}}
		state[start] = 1
		for len(stack) > 0 {
			f := &stack[len(stack)-1]
			ins := nodes[f.node].GetInput()
			if f.next == len(ins) {
				state[f.node] = 2
				order = append(order, nodes[f.node])
				stack = stack[:len(stack)-1]
				continue
			}
			name := ins[f.next]
			f.next++
			if name == "" || name == input || inits[name] != nil {
				continue
			}
			p, ok := producer[name]
			if !ok {
				return nil, fmt.Errorf("node %q (%s) uses %q, which nothing defines", nodes[f.node].GetName(), nodes[f.node].GetOpType(), name)
			}
			switch state[p] {
			case 1:
				return nil, fmt.Errorf("the graph has a cycle through %q", name)
			case 0:
				state[p] = 1
				stack = append(stack, frame{p, 0})
			}
		}
	}
	return order, nil
}

// assignRoles decides which initializers are weights, from how the nodes use them.
func (m *Model) assignRoles(inits map[string]*ctensor) error {
	set := func(name, r string, n *onnxpb.NodeProto) error {
		if _, ok := inits[name]; !ok {
			if r == roleBias {
				return nil // a computed addend
			}
			return fmt.Errorf("node %q (%s): its weight %q is computed, not stored; not supported", n.GetName(), n.GetOpType(), name)
		}
		if old, ok := m.role[name]; ok && old != r {
			return fmt.Errorf("initializer %q is used both as %s and as %s", name, old, r)
		}
		m.role[name] = r
		return nil
	}
	matmulOut := map[string]bool{}
	for _, n := range m.nodes {
		in := n.GetInput()
		arg := func(k int) string {
			if k < len(in) {
				return in[k]
			}
			return ""
		}
		var err error
		switch n.GetOpType() {
		case "Conv":
			if err = set(arg(1), roleConvW, n); err == nil && arg(2) != "" {
				err = set(arg(2), roleParam, n)
			}
		case "BatchNormalization":
			if len(in) < 5 {
				return fmt.Errorf("node %q (BatchNormalization) has %d inputs", n.GetName(), len(in))
			}
			for k, r := range []string{roleParam, roleParam, roleBuffer, roleBuffer} {
				if err == nil {
					err = set(arg(k+1), r, n)
				}
			}
		case "Gemm":
			r := roleGemmT
			if attrInt(n, "transB", 0) == 1 {
				r = roleGemm
			}
			if err = set(arg(1), r, n); err == nil && arg(2) != "" {
				err = set(arg(2), roleBias, n)
			}
		case "MatMul":
			err = set(arg(1), roleGemmT, n)
			for _, o := range n.GetOutput() {
				matmulOut[o] = true
			}
		case "Add":
			for k := range 2 {
				if matmulOut[arg(1-k)] && inits[arg(k)] != nil {
					err = set(arg(k), roleBias, n)
				}
			}
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// addTensor puts an initializer into the store in the engine's layout.
func (m *Model) addTensor(name, r string, c *ctensor) error {
	t := c.float32()
	if c.isInt() {
		return fmt.Errorf("initializer %q (%s) holds integers", name, r)
	}
	switch r {
	case roleConvW:
		if len(t.Shape) != 4 {
			return fmt.Errorf("convolution weight %q has shape %v", name, t.Shape)
		}
		t = tensor.ToNHWC(t)
	case roleGemmT, roleGemm:
		if len(t.Shape) != 2 {
			return fmt.Errorf("fully connected weight %q has shape %v", name, t.Shape)
		}
		if r == roleGemmT {
			t = transpose2(t)
		}
	case roleBias:
		if len(t.Shape) == 2 && t.Shape[0] == 1 {
			t = tensor.From(t.Data, t.Shape[1])
		}
		if len(t.Shape) != 1 {
			return fmt.Errorf("bias %q has shape %v", name, t.Shape)
		}
	case roleBuffer:
		if len(t.Shape) != 1 {
			return fmt.Errorf("batch-norm statistic %q has shape %v", name, t.Shape)
		}
		m.store.Buffer(name, t)
		return nil
	}
	m.params[name] = m.store.Param(name, t)
	return nil
}

func (m *Model) prepareBatchNorms() error {
	for _, n := range m.nodes {
		if n.GetOpType() != "BatchNormalization" {
			continue
		}
		in := n.GetInput()
		gamma, beta := m.params[in[1]], m.params[in[2]]
		mean, vr := m.store.Tensor(in[3]), m.store.Tensor(in[4])
		c := gamma.Value.Len()
		for _, t := range []*tensor.Tensor{beta.Value, mean, vr} {
			if len(t.Shape) != 1 || t.Shape[0] != c {
				return fmt.Errorf("node %q (BatchNormalization): parameters of %d and %v channels", n.GetName(), c, t.Shape)
			}
		}
		for _, v := range vr.Data {
			if !(v >= 0) {
				return fmt.Errorf("node %q (BatchNormalization): running variance %g", n.GetName(), v)
			}
		}
		eps := attrFloat(n, "epsilon", 1e-5)
		if !(eps > 0) {
			return fmt.Errorf("node %q (BatchNormalization): epsilon %g", n.GetName(), eps)
		}
		m.bns[n] = &nn.BatchNorm{Gamma: gamma, Beta: beta, Mean: mean, Var: vr,
			Eps: eps, Momentum: 1 - attrFloat(n, "momentum", 0.9)}
	}
	return nil
}

// dropFinalSoftmax makes a graph that ends in Softmax answer logits: its input.
func (m *Model) dropFinalSoftmax() {
	for _, n := range m.nodes {
		if len(n.GetOutput()) == 1 && n.GetOutput()[0] == m.output && n.GetOpType() == "Softmax" && len(n.GetInput()) == 1 {
			m.output = n.GetInput()[0]
			m.nodes = slices.DeleteFunc(m.nodes, func(x *onnxpb.NodeProto) bool { return x == n })
			m.notes = append(m.notes, fmt.Sprintf("the graph ends in Softmax (node %q): its input is used as the logits", n.GetName()))
			return
		}
	}
}

// Forward implements models.Model. x is an NHWC batch of the graph's input size (the
// importer checked every shape at that size); train selects batch statistics and dropout.
func (m *Model) Forward(tp *nn.Tape, x *nn.Var, train bool) *nn.Var {
	if s := x.Shape(); len(s) != 4 || s[1] != m.inH || s[2] != m.inW || s[3] != m.inC {
		panic(fmt.Sprintf("onnx: input %v, the graph takes [N %d %d %d] (NHWC)", s, m.inH, m.inW, m.inC))
	}
	y, err := m.run(tp, x, train)
	if err != nil {
		panic("onnx: " + err.Error())
	}
	return y
}

// attribute helpers

func attr(n *onnxpb.NodeProto, name string) *onnxpb.AttributeProto {
	for _, a := range n.GetAttribute() {
		if a.GetName() == name {
			return a
		}
	}
	return nil
}

func attrInt(n *onnxpb.NodeProto, name string, def int64) int64 {
	if a := attr(n, name); a != nil {
		return a.GetI()
	}
	return def
}

func attrFloat(n *onnxpb.NodeProto, name string, def float32) float32 {
	if a := attr(n, name); a != nil {
		return a.GetF()
	}
	return def
}

func attrInts(n *onnxpb.NodeProto, name string) []int {
	a := attr(n, name)
	if a == nil {
		return nil
	}
	out := make([]int, len(a.GetInts()))
	for k, v := range a.GetInts() {
		out[k] = clampInt(v)
	}
	return out
}

func attrString(n *onnxpb.NodeProto, name, def string) string {
	if a := attr(n, name); a != nil {
		return string(a.GetS())
	}
	return def
}

// transpose2 returns the transpose of a matrix.
func transpose2(t *tensor.Tensor) *tensor.Tensor {
	tt := tensor.New(t.Shape[1], t.Shape[0])
	for i := range t.Shape[0] {
		for j := range t.Shape[1] {
			tt.Data[j*t.Shape[0]+i] = t.Data[i*t.Shape[1]+j]
		}
	}
	return tt
}

// fileLayout converts a tensor of the store (a weight, or its gradient) of initializer name
// back to the layout the file holds it in.
func (m *Model) fileLayout(name string, t *tensor.Tensor) *tensor.Tensor {
	switch m.role[name] {
	case roleConvW:
		return tensor.ToNCHW(t)
	case roleGemmT:
		return transpose2(t)
	}
	return t
}
