package onnx

import (
	"math"
	"math/rand/v2"
	"testing"

	"google.golang.org/protobuf/proto"

	"move/internal/models"
	"move/internal/nn"
	"move/internal/onnx/onnxpb"
	"move/internal/tensor"
)

// randomise gives every weight and statistic of m a distinct value, so that a layout or
// naming mistake changes the output.
func randomise(m models.Model, seed uint64) {
	r := rand.New(rand.NewPCG(seed, 3))
	for _, name := range m.Store().Names() {
		t := m.Store().Tensor(name)
		for i := range t.Data {
			switch {
			case len(name) > 12 && name[len(name)-12:] == "running_var":
				t.Data[i] = 0.5 + r.Float32()
			case len(name) > 6 && name[len(name)-6:] == "weight" && len(t.Shape) == 1:
				t.Data[i] = 0.5 + r.Float32()
			default:
				t.Data[i] += 0.1 * float32(r.NormFloat64())
			}
		}
	}
}

func logits(t *testing.T, m models.Model, x *tensor.Tensor) []float32 {
	t.Helper()
	return m.Forward(nil, nn.Const(x), false).Value.Data
}

func randImages(n, size int, seed uint64) *tensor.Tensor {
	r := rand.New(rand.NewPCG(seed, 5))
	x := tensor.New(n, size, size, 3)
	for i := range x.Data {
		x.Data[i] = float32(r.NormFloat64())
	}
	return x
}

func closeRel(a, b []float32, tol float64) (int, float64) {
	worst, at := 0.0, -1
	scale := 0.0
	for _, v := range b {
		scale = math.Max(scale, math.Abs(float64(v)))
	}
	for i := range a {
		d := math.Abs(float64(a[i]-b[i])) / (scale + 1e-12)
		if d > worst {
			worst, at = d, i
		}
	}
	if worst <= tol {
		return -1, worst
	}
	return at, worst
}

// Every built-in architecture survives export and import: the same logits, folded or not.
func TestExportImportRoundTrip(t *testing.T) {
	for _, arch := range models.Names() {
		for _, fold := range []bool{false, true} {
			name := arch
			if fold {
				name += "-folded"
			}
			t.Run(name, func(t *testing.T) {
				if testing.Short() && arch != "resnet20" && arch != "wrn16-1" && arch != "vgg11-bn" {
					t.Skip("slow")
				}
				m, err := models.New(arch, 10, 1)
				if err != nil {
					t.Fatal(err)
				}
				randomise(m, 2)
				size := 32
				b, err := Export(m, size, map[string]string{"k": "v"}, ExportOptions{FoldBatchNorms: fold})
				if err != nil {
					t.Fatal(err)
				}
				var mp onnxpb.ModelProto
				if err := proto.Unmarshal(b, &mp); err != nil {
					t.Fatal(err)
				}
				used := map[string]bool{}
				for _, n := range mp.GetGraph().GetNode() {
					for _, in := range n.GetInput() {
						used[in] = true
					}
				}
				for _, init := range mp.GetGraph().GetInitializer() {
					if !used[init.GetName()] {
						t.Errorf("initializer %s is not used", init.GetName())
					}
				}
				im, err := Import(b, "", Options{})
				if err != nil {
					t.Fatal(err)
				}
				if im.Classes() != 10 || im.InputSize() != size || im.Metadata()["k"] != "v" {
					t.Fatalf("classes %d size %d meta %v", im.Classes(), im.InputSize(), im.Metadata())
				}
				x := randImages(3, size, 9)
				want, got := logits(t, m, x), logits(t, im, x)
				if at, d := closeRel(got, want, 1e-4); at >= 0 {
					t.Fatalf("logit %d: %g, want %g (relative %g)", at, got[at], want[at], d)
				}
				wantParams := m.Store().NumParams()
				if fold {
					if im.Store().NumParams() >= wantParams {
						t.Fatalf("folded graph has %d parameters, unfolded %d", im.Store().NumParams(), wantParams)
					}
				} else if im.Store().NumParams() != wantParams {
					t.Fatalf("imported %d parameters, model has %d", im.Store().NumParams(), wantParams)
				}
				// Re-exporting the imported graph gives the same graph back.
				b2, err := Export(im, size, map[string]string{"k": "v"}, ExportOptions{})
				if err != nil {
					t.Fatal(err)
				}
				im2, err := Import(b2, "", Options{})
				if err != nil {
					t.Fatal(err)
				}
				if at, d := closeRel(logits(t, im2, x), want, 1e-4); at >= 0 {
					t.Fatalf("re-exported logit %d off by %g", at, d)
				}
			})
		}
	}
}
