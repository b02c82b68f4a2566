package onnx

import (
	"fmt"
	"math"
	"sort"

	"google.golang.org/protobuf/proto"

	"move/internal/models"
	"move/internal/nn"
	"move/internal/onnx/onnxpb"
	"move/internal/tensor"
)

// ExportOpset is the operator set exported graphs declare (IR version 7).
const ExportOpset = 13

// ExportOptions adjust an export.
type ExportOptions struct {
	// FoldBatchNorms merges each batch norm that follows a convolution into the convolution's weights
	// and bias, as PyTorch's exporter does by default.
	FoldBatchNorms bool
	// Producer is written as the producer version.
	Producer string
}

// Export writes m as an ONNX model that takes an NCHW float batch of size x size images
// (the batch size is symbolic) and answers logits. Built-in architectures are traced through
// their forward pass in inference mode; an imported graph is written back as it was read,
// with its current weights. meta becomes metadata_props.
func Export(m models.Model, size int, meta map[string]string, opts ExportOptions) ([]byte, error) {
	var mp *onnxpb.ModelProto
	var err error
	if im, ok := m.(*Model); ok {
		if opts.FoldBatchNorms {
			return nil, fmt.Errorf("folding batch norms of an imported graph is not supported")
		}
		mp, err = im.reexport()
	} else {
		mp, err = trace(m, size, opts)
	}
	if err != nil {
		return nil, err
	}
	mp.MetadataProps = nil
	keys := make([]string, 0, len(meta))
	for k := range meta {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		mp.MetadataProps = append(mp.MetadataProps, &onnxpb.StringStringEntryProto{Key: ptr(k), Value: ptr(meta[k])})
	}
	if opts.Producer != "" {
		mp.ProducerName, mp.ProducerVersion = ptr("move"), ptr(opts.Producer)
	}
	return proto.MarshalOptions{Deterministic: true}.Marshal(mp)
}

// reexport copies the imported file with the initializers set to the current weights.
func (m *Model) reexport() (*onnxpb.ModelProto, error) {
	mp := proto.Clone(m.proto).(*onnxpb.ModelProto)
	for k, t := range mp.GetGraph().GetInitializer() {
		name := t.GetName()
		r := m.role[name]
		var cur *tensor.Tensor
		switch {
		case r == roleConst || r == "":
			if t.GetDataLocation() == onnxpb.TensorProto_EXTERNAL { // bring the data inline
				c := m.consts[name]
				if c == nil || c.isInt() {
					return nil, fmt.Errorf("initializer %q: external integer data cannot be re-exported", name)
				}
				cur = c.float32()
			} else {
				continue
			}
		case r == roleBuffer:
			cur = m.store.Tensor(name)
		default:
			cur = m.params[name].Value
		}
		cur = m.fileLayout(name, cur)
		shape := make([]int, len(t.GetDims()))
		for d, v := range t.GetDims() {
			shape[d] = int(v)
		}
		if tensor.Numel(shape) != cur.Len() {
			return nil, fmt.Errorf("initializer %q changed size", name)
		}
		mp.Graph.Initializer[k] = floatTensor(name, shape, cur.Data)
	}
	return mp, nil
}

// tracer state for an export.
type exporter struct {
	names  map[*nn.Var]string
	bufs   map[*tensor.Tensor]string
	inits  []*onnxpb.TensorProto
	done   map[string]bool
	nodes  []*onnxpb.NodeProto
	count  int
	opts   ExportOptions
	fold   map[*nn.Var]nn.Node // conv output -> the batch norm node that consumes it
	traced []nn.Node
}

func trace(m models.Model, size int, opts ExportOptions) (*onnxpb.ModelProto, error) {
	e := &exporter{names: map[*nn.Var]string{}, bufs: map[*tensor.Tensor]string{}, done: map[string]bool{}, opts: opts}
	st := m.Store()
	params := map[*nn.Var]string{}
	for k, p := range st.Params() {
		params[p] = st.ParamNames()[k]
	}
	for _, name := range st.Names() {
		if t := st.Tensor(name); t != nil {
			e.bufs[t] = name
		}
	}
	tp := nn.NewTape(false)
	tp.Trace(func(n nn.Node) { e.traced = append(e.traced, n) })
	x := nn.Const(tensor.New(1, size, size, 3))
	var y *nn.Var
	if err := nn.Catch(func() { y = m.Forward(tp, x, false) }); err != nil {
		return nil, fmt.Errorf("tracing %s at %dx%d: %w", m.Arch(), size, size, err)
	}
	e.names[x] = "input"
	for p, name := range params {
		e.names[p] = name
	}
	e.fold = map[*nn.Var]nn.Node{}
	if opts.FoldBatchNorms {
		e.fold = nn.Folds(e.traced, y)
	}
	for _, n := range e.traced {
		if err := e.node(n, params); err != nil {
			return nil, err
		}
	}
	out, ok := e.names[y]
	if !ok {
		return nil, fmt.Errorf("the output of %s was not traced", m.Arch())
	}
	if len(y.Shape()) != 2 {
		return nil, fmt.Errorf("%s answers shape %v, not [N, classes]", m.Arch(), y.Shape())
	}
	// The traced output has an internal name; give the graph a stable one.
	e.nodes = append(e.nodes, &onnxpb.NodeProto{OpType: ptr("Identity"), Input: []string{out}, Output: []string{"logits"}, Name: ptr("output")})
	dim := func(v int64) *onnxpb.TensorShapeProto_Dimension {
		return &onnxpb.TensorShapeProto_Dimension{Value: &onnxpb.TensorShapeProto_Dimension_DimValue{DimValue: v}}
	}
	batch := &onnxpb.TensorShapeProto_Dimension{Value: &onnxpb.TensorShapeProto_Dimension_DimParam{DimParam: "batch"}}
	vi := func(name string, dims ...*onnxpb.TensorShapeProto_Dimension) *onnxpb.ValueInfoProto {
		return &onnxpb.ValueInfoProto{Name: ptr(name), Type: &onnxpb.TypeProto{Value: &onnxpb.TypeProto_TensorType{
			TensorType: &onnxpb.TypeProto_Tensor{ElemType: ptr(int32(dtFloat)), Shape: &onnxpb.TensorShapeProto{Dim: dims}}}}}
	}
	g := &onnxpb.GraphProto{
		Name:        ptr(m.Arch()),
		Node:        e.nodes,
		Initializer: e.inits,
		Input:       []*onnxpb.ValueInfoProto{vi("input", batch, dim(3), dim(int64(size)), dim(int64(size)))},
		Output:      []*onnxpb.ValueInfoProto{vi("logits", batch, dim(int64(y.Shape()[1])))},
	}
	return &onnxpb.ModelProto{
		IrVersion:   ptr(int64(7)),
		OpsetImport: []*onnxpb.OperatorSetIdProto{{Domain: ptr(""), Version: ptr(int64(ExportOpset))}},
		Graph:       g,
	}, nil
}

// ref names a traced variable, writing parameters and constants as initializers on first use.
func (e *exporter) ref(v *nn.Var) (string, error) {
	if v == nil {
		return "", nil
	}
	name, ok := e.names[v]
	if !ok {
		if v.RequiresGrad() {
			return "", fmt.Errorf("a value of shape %v comes from an operation that cannot be exported", v.Shape())
		}
		// A constant operand.
		name = fmt.Sprintf("const_%d", len(e.inits))
		e.names[v] = name
	}
	if !e.done[name] && name != "input" && !e.produced(name) {
		t := v.Value
		if len(t.Shape) == 4 {
			t = tensor.ToNCHW(t)
		}
		e.init(name, t)
	}
	return name, nil
}

func (e *exporter) produced(name string) bool {
	for _, n := range e.nodes {
		for _, o := range n.GetOutput() {
			if o == name {
				return true
			}
		}
	}
	return false
}

func (e *exporter) init(name string, t *tensor.Tensor) {
	if e.done[name] {
		return
	}
	e.done[name] = true
	e.inits = append(e.inits, floatTensor(name, t.Shape, t.Data))
}

func (e *exporter) out(v *nn.Var) string {
	e.count++
	name := fmt.Sprintf("t%d", e.count)
	e.names[v] = name
	return name
}

func (e *exporter) emit(op string, ins []string, out string, attrs ...*onnxpb.AttributeProto) {
	e.nodes = append(e.nodes, &onnxpb.NodeProto{
		Name: ptr(fmt.Sprintf("%s_%d", op, len(e.nodes))), OpType: ptr(op), Input: ins, Output: []string{out}, Attribute: attrs,
	})
}

func intsAttr(name string, v ...int) *onnxpb.AttributeProto {
	return &onnxpb.AttributeProto{Name: ptr(name), Type: onnxpb.AttributeProto_INTS.Enum(), Ints: dims64(v)}
}

func intAttr(name string, v int) *onnxpb.AttributeProto {
	return &onnxpb.AttributeProto{Name: ptr(name), Type: onnxpb.AttributeProto_INT.Enum(), I: ptr(int64(v))}
}

func floatAttr(name string, v float32) *onnxpb.AttributeProto {
	return &onnxpb.AttributeProto{Name: ptr(name), Type: onnxpb.AttributeProto_FLOAT.Enum(), F: ptr(v)}
}

func (e *exporter) node(n nn.Node, params map[*nn.Var]string) error {
	if f, ok := e.fold[n.In[0]]; ok && n.Op == "BatchNormalization" && f.BN == n.BN {
		return nil // merged into the convolution
	}
	if bn, ok := e.fold[n.Out]; ok && n.Op == "Conv" { // only the input and the merged weights
		x, err := e.ref(n.In[0])
		if err != nil {
			return fmt.Errorf("exporting Conv: %w", err)
		}
		k := n.In[1].Shape()[1]
		s, p := n.Ints["stride"][0], n.Ints["pad"][0]
		attrs := []*onnxpb.AttributeProto{intsAttr("kernel_shape", k, k), intsAttr("strides", s, s), intsAttr("pads", p, p, p, p), intsAttr("dilations", 1, 1), intAttr("group", 1)}
		w, b := foldConv(n.In[1].Value, n.In[2], bn.BN)
		base := params[n.In[1]]
		wn, bnm := base+".folded", base+".folded_bias"
		e.init(wn, tensor.ToNCHW(w))
		e.init(bnm, b)
		e.emit("Conv", []string{x, wn, bnm}, e.out(bn.Out), attrs...)
		return nil
	}
	var ins []string
	for _, v := range n.In {
		if v == nil {
			ins = append(ins, "")
			continue
		}
		name, err := e.ref(v)
		if err != nil {
			return fmt.Errorf("exporting %s: %w", n.Op, err)
		}
		ins = append(ins, name)
	}
	switch n.Op {
	case "Conv":
		k := n.In[1].Shape()[1]
		s, p := n.Ints["stride"][0], n.Ints["pad"][0]
		attrs := []*onnxpb.AttributeProto{intsAttr("kernel_shape", k, k), intsAttr("strides", s, s), intsAttr("pads", p, p, p, p), intsAttr("dilations", 1, 1), intAttr("group", 1)}
		if ins[2] == "" {
			ins = ins[:2]
		}
		e.emit("Conv", ins, e.out(n.Out), attrs...)
	case "BatchNormalization":
		if n.Train {
			return fmt.Errorf("a batch norm in training mode cannot be exported")
		}
		mean, vr := e.bufs[n.BN.Mean], e.bufs[n.BN.Var]
		if mean == "" || vr == "" {
			return fmt.Errorf("a batch norm's statistics are not in the model's store")
		}
		e.init(mean, n.BN.Mean)
		e.init(vr, n.BN.Var)
		e.emit("BatchNormalization", []string{ins[0], ins[1], ins[2], mean, vr}, e.out(n.Out),
			floatAttr("epsilon", n.BN.Eps), floatAttr("momentum", 1-n.BN.Momentum))
	case "Relu", "Tanh", "Sigmoid":
		e.emit(n.Op, ins, e.out(n.Out))
	case "LeakyRelu":
		e.emit(n.Op, ins, e.out(n.Out), floatAttr("alpha", n.Floats["alpha"]))
	case "Clip":
		lo, hi := fmt.Sprintf("clip_min_%d", len(e.nodes)), fmt.Sprintf("clip_max_%d", len(e.nodes))
		e.init(lo, tensor.From([]float32{n.Floats["min"]}))
		e.init(hi, tensor.From([]float32{min(n.Floats["max"], math.MaxFloat32)}))
		e.emit("Clip", []string{ins[0], lo, hi}, e.out(n.Out))
	case "Softmax", "LogSoftmax":
		if len(n.In[0].Shape()) != 2 {
			return fmt.Errorf("%s of rank %d cannot be exported", n.Op, len(n.In[0].Shape()))
		}
		e.emit(n.Op, ins, e.out(n.Out), intAttr("axis", 1))
	case "Add", "Sub", "Mul", "Div":
		e.emit(n.Op, ins, e.out(n.Out))
	case "MaxPool", "AveragePool":
		k, s, p := n.Ints["kernel"][0], n.Ints["stride"][0], n.Ints["pad"][0]
		attrs := []*onnxpb.AttributeProto{intsAttr("kernel_shape", k, k), intsAttr("strides", s, s), intsAttr("pads", p, p, p, p)}
		if n.Op == "AveragePool" {
			attrs = append(attrs, intAttr("count_include_pad", 1))
		}
		e.emit(n.Op, ins, e.out(n.Out), attrs...)
	case "GlobalAveragePool": // the engine's answers [N][C]; ONNX's [N][C][1][1]
		mid := fmt.Sprintf("gap_%d", len(e.nodes))
		e.emit("GlobalAveragePool", ins, mid)
		e.emit("Flatten", []string{mid}, e.out(n.Out), intAttr("axis", 1))
	case "Gemm":
		if ins[2] == "" {
			ins = ins[:2]
		}
		e.emit("Gemm", ins, e.out(n.Out), intAttr("transB", 1))
	case "Concat":
		r := len(n.Out.Shape())
		a := r - 1
		if r == 4 {
			a = 1
		}
		e.emit("Concat", ins, e.out(n.Out), intAttr("axis", a))
	case "Reshape":
		in, out := n.In[0].Shape(), n.Out.Shape()
		if len(in) == 4 && (in[1]*in[2] != 1 && in[3] != 1) || len(out) == 4 {
			return fmt.Errorf("a reshape of %v to %v cannot be exported", in, out)
		}
		shape := make([]int64, len(out))
		for d, v := range out {
			shape[d] = int64(v)
		}
		if len(out) > 0 && len(in) > 0 && out[0] == in[0] {
			shape[0] = 0 // keep the batch size symbolic
		}
		sn := fmt.Sprintf("shape_%d", len(e.nodes))
		e.inits = append(e.inits, intTensor(sn, []int{len(shape)}, shape))
		e.done[sn] = true
		src := ins[0]
		if len(in) == 4 { // NHWC storage and NCHW agree here; flatten in the graph's layout
			mid := fmt.Sprintf("flat_%d", len(e.nodes))
			e.emit("Flatten", []string{src}, mid, intAttr("axis", 1))
			src = mid
		}
		e.emit("Reshape", []string{src, sn}, e.out(n.Out))
	default:
		return fmt.Errorf("operation %s cannot be exported", n.Op)
	}
	return nil
}

// foldConv returns the weights and bias of conv(x, w, b) followed by bn in inference mode:
// w'[o] = w[o]·s[o], b'[o] = (b[o] - mean[o])·s[o] + beta[o], s = gamma/√(var+eps).
func foldConv(w *tensor.Tensor, b *nn.Var, bn *nn.BatchNorm) (*tensor.Tensor, *tensor.Tensor) {
	o := w.Shape[0]
	per := w.Len() / o
	fw, fb := w.Clone(), tensor.New(o)
	for j := range o {
		s := float64(bn.Gamma.Data()[j]) / math.Sqrt(float64(bn.Var.Data[j])+float64(bn.Eps))
		for k := range per {
			fw.Data[j*per+k] = float32(float64(w.Data[j*per+k]) * s)
		}
		bias := 0.0
		if b != nil {
			bias = float64(b.Data()[j])
		}
		fb.Data[j] = float32((bias-float64(bn.Mean.Data[j]))*s + float64(bn.Beta.Data()[j]))
	}
	return fw, fb
}
