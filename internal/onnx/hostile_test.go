package onnx

import (
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"move/internal/onnx/onnxpb"
	"move/internal/tensor"
)

// graph helps build small ONNX models by hand.
type graph struct {
	g *onnxpb.GraphProto
	r *rand.Rand
}

func newGraph(size int) *graph {
	dim := func(v int64) *onnxpb.TensorShapeProto_Dimension {
		return &onnxpb.TensorShapeProto_Dimension{Value: &onnxpb.TensorShapeProto_Dimension_DimValue{DimValue: v}}
	}
	in := &onnxpb.ValueInfoProto{Name: ptr("x"), Type: &onnxpb.TypeProto{Value: &onnxpb.TypeProto_TensorType{
		TensorType: &onnxpb.TypeProto_Tensor{ElemType: ptr(int32(dtFloat)), Shape: &onnxpb.TensorShapeProto{
			Dim: []*onnxpb.TensorShapeProto_Dimension{dim(1), dim(3), dim(int64(size)), dim(int64(size))}}}}}}
	return &graph{g: &onnxpb.GraphProto{Input: []*onnxpb.ValueInfoProto{in},
		Output: []*onnxpb.ValueInfoProto{{Name: ptr("y")}}}, r: rand.New(rand.NewPCG(1, 1))}
}

func (g *graph) weight(name string, shape ...int) string {
	data := make([]float32, tensor.Numel(shape))
	for i := range data {
		data[i] = float32(g.r.NormFloat64())
	}
	g.g.Initializer = append(g.g.Initializer, floatTensor(name, shape, data))
	return name
}

func (g *graph) ints(name string, v ...int64) string {
	g.g.Initializer = append(g.g.Initializer, intTensor(name, []int{len(v)}, v))
	return name
}

func (g *graph) node(op string, ins []string, out string, attrs ...*onnxpb.AttributeProto) {
	g.g.Node = append(g.g.Node, &onnxpb.NodeProto{Name: ptr(out), OpType: ptr(op), Input: ins, Output: []string{out}, Attribute: attrs})
}

func (g *graph) bytes(opset int64) []byte {
	b, err := proto.Marshal(&onnxpb.ModelProto{IrVersion: ptr(int64(7)), Graph: g.g,
		OpsetImport: []*onnxpb.OperatorSetIdProto{{Version: ptr(opset)}}})
	if err != nil {
		panic(err)
	}
	return b
}

// tiny is conv - batch norm - relu - option-A shortcut (strided slice, channel pad) - add -
// global pooling - flatten (by Shape, Gather, Unsqueeze, Concat, Reshape) - fully connected.
func tiny() *graph {
	g := newGraph(4)
	g.node("Conv", []string{"x", g.weight("w", 4, 3, 3, 3)}, "c", intsAttr("pads", 1, 1, 1, 1), intsAttr("strides", 2, 2), intsAttr("kernel_shape", 3, 3))
	g.weight("s", 4)
	g.node("BatchNormalization", []string{"c", "s", g.weight("b", 4), g.weight("m", 4), "v"}, "n")
	g.g.Initializer = append(g.g.Initializer, floatTensor("v", []int{4}, []float32{1, 2, 3, 4}))
	g.node("Relu", []string{"n"}, "r0")
	g.node("Identity", []string{"r0"}, "r1")
	g.node("Dropout", []string{"r1"}, "r")
	g.node("Slice", []string{"x", g.ints("st", 0, 0), g.ints("en", 9, 9), g.ints("ax", 2, 3), g.ints("sp", 2, 2)}, "sl")
	g.node("Pad", []string{"sl", g.ints("pads", 0, 0, 0, 0, 0, 1, 0, 0)}, "pd")
	g.node("Add", []string{"r", "pd"}, "a")
	g.node("GlobalAveragePool", []string{"a"}, "p")
	g.node("Shape", []string{"p"}, "sh")
	g.g.Initializer = append(g.g.Initializer, intTensor("zero", []int{}, []int64{0}))
	g.node("Gather", []string{"sh", "zero"}, "n0s", intAttr("axis", 0)) // a scalar
	g.node("Unsqueeze", []string{"n0s"}, "n0", intsAttr("axes", 0))     // opset 11: axes attribute
	g.node("Concat", []string{"n0", g.ints("minus1", -1)}, "tgt", intAttr("axis", 0))
	g.node("Reshape", []string{"p", "tgt"}, "f")
	g.node("Gemm", []string{"f", g.weight("fc", 3, 4), g.weight("fcb", 3)}, "y", intAttr("transB", 1))
	return g
}

func TestTinyGraph(t *testing.T) {
	m, err := Import(tiny().bytes(11), "", Options{})
	if err != nil {
		t.Fatal(err)
	}
	if m.Classes() != 3 || m.Store().NumParams() != 4*27+4+4+12+3 {
		t.Fatalf("%d classes, %d parameters", m.Classes(), m.Store().NumParams())
	}
}

// Hostile or broken files give an error that says what is wrong, never a panic.
func TestHostileFiles(t *testing.T) {
	good := tiny().bytes(11)
	cases := map[string]struct {
		b    func() []byte
		want string
	}{
		"truncated": {func() []byte { return good[:len(good)/2] }, "not an ONNX model"},
		"empty":     {func() []byte { return nil }, "no graph"},
		"opset":     {func() []byte { return tiny().bytes(3) }, "opset 3 is not supported"},
		"huge-dims": {func() []byte {
			g := tiny()
			g.g.Initializer[0].Dims = []int64{1 << 40, 1 << 40}
			return g.bytes(11)
		}, `tensor "w": dimension 0 is 1099511627776`},
		"short-data": {func() []byte {
			g := tiny()
			g.g.Initializer[0].Dims = []int64{4, 3, 3, 4}
			return g.bytes(11)
		}, `tensor "w": 432 bytes of data for shape [4 3 3 4]`},
		"cycle": {func() []byte {
			g := tiny()
			g.g.Node[2].Input = []string{"a"} // relu <- add <- relu
			return g.bytes(11)
		}, "cycle"},
		"undefined": {func() []byte {
			g := tiny()
			g.g.Node[2].Input = []string{"nowhere"}
			return g.bytes(11)
		}, `node "r0" (Relu) uses "nowhere", which nothing defines`},
		"wrong-shape": {func() []byte {
			g := tiny()
			g.g.Node[len(g.g.Node)-1].Input[1] = g.weight("fc2", 3, 5)
			return g.bytes(11)
		}, `node "y" (Gemm): input [1 4] does not fit the weight (5 inputs)`},
		"unsupported-op": {func() []byte {
			g := tiny()
			g.g.Node[2].OpType = ptr("Elu")
			return g.bytes(11)
		}, `node "r0" (Elu): operator Elu is not supported`},
		"huge-constant": {func() []byte {
			g := tiny()
			g.node("ConstantOfShape", []string{g.ints("big", 1<<20, 1<<20)}, "z")
			g.node("Add", []string{"y", "z"}, "y2")
			g.g.Output[0].Name = ptr("y2")
			return g.bytes(11)
		}, "has more than 268435456 elements"},
		"huge-pad": {func() []byte {
			g := tiny()
			for _, in := range g.g.Initializer {
				if in.GetName() == "pads" {
					in.Int64Data = []int64{0, 0, 0, 0, 0, 1 << 30, 0, 0}
				}
			}
			return g.bytes(11)
		}, "more than"},
		"wide-conv": {func() []byte {
			g := tiny()
			g.g.Node[0].Attribute = []*onnxpb.AttributeProto{intsAttr("pads", 200, 200, 200, 200)}
			return g.bytes(11)
		}, "kernel 3 stride 1 pad 200"},
		"external-escape": {func() []byte {
			g := tiny()
			t := g.g.Initializer[0]
			t.RawData, t.DataLocation = nil, onnxpb.TensorProto_EXTERNAL.Enum()
			t.ExternalData = []*onnxpb.StringStringEntryProto{{Key: ptr("location"), Value: ptr("../../etc/passwd")}}
			return g.bytes(11)
		}, "leaves the model's folder"},
		"external-range": {func() []byte {
			g := tiny()
			t := g.g.Initializer[0]
			t.RawData, t.DataLocation = nil, onnxpb.TensorProto_EXTERNAL.Enum()
			t.ExternalData = []*onnxpb.StringStringEntryProto{{Key: ptr("location"), Value: ptr("w.bin")}, {Key: ptr("offset"), Value: ptr("8")}}
			return g.bytes(11)
		}, "lie outside its 16 bytes"},
	}
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "w.bin"), make([]byte, 16), 0o644)
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := Import(c.b(), dir, Options{})
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %v, want one containing %q", err, c.want)
			}
		})
	}
}

// FuzzImport: no input makes the importer panic; an accepted graph runs.
func FuzzImport(f *testing.F) {
	f.Add(tiny().bytes(11))
	f.Add(tiny().bytes(13))
	g := tiny()
	g.node("Softmax", []string{"y"}, "sm", intAttr("axis", 1))
	g.g.Output[0].Name = ptr("sm")
	f.Add(g.bytes(11))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := Import(b, "", Options{MaxInputSize: 32}) // larger images only make the dry run slow
		if err != nil {
			return
		}
		if m.Classes() < 2 || m.InputSize() < 1 {
			t.Fatalf("accepted a model with %d classes, input %d", m.Classes(), m.InputSize())
		}
	})
}
