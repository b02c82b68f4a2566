package models

import (
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"move/internal/nn"
	"move/internal/tensor"
)

// Eval's chunked passes give the logits of one layer-by-layer pass over the whole batch,
// for a batch that is not a multiple of the chunk.
func TestEvalMatchesForward(t *testing.T) {
	for _, name := range []string{"resnet20", "wrn16-1", "vgg11-bn"} {
		t.Run(name, func(t *testing.T) {
			m, err := New(name, 10, 3)
			if err != nil {
				t.Fatal(err)
			}
			// Non-trivial running statistics, so that evaluation mode differs from training.
			for k, name := range m.Store().Names() {
				if strings.HasSuffix(name, "running_var") || strings.HasSuffix(name, "running_mean") {
					b := m.Store().Tensor(name)
					for i := range b.Data {
						b.Data[i] = 0.5 + float32((k+i)%5)/10
					}
				}
			}
			n := 2*evalChunk + 5
			x := tensor.New(n, 32, 32, 3)
			r := rand.New(rand.NewPCG(1, 2))
			for i := range x.Data {
				x.Data[i] = float32(r.NormFloat64())
			}
			want := m.Forward(nil, nn.Const(x), false).Value
			got := Eval(m, x)
			if !tensor.SameShape(got.Shape, want.Shape) {
				t.Fatalf("shape %v, want %v", got.Shape, want.Shape)
			}
			for i, w := range want.Data {
				if d := math.Abs(float64(got.Data[i] - w)); d > 1e-5*(1+math.Abs(float64(w))) {
					t.Fatalf("logit %d (image %d): %g, layer-by-layer %g", i, i/10, got.Data[i], w)
				}
			}
		})
	}
}
