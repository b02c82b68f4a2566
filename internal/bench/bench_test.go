package bench

import (
	"math/rand/v2"
	"testing"

	"move/internal/features"
	"move/internal/models"
	"move/internal/nn"
)

func benchModel(b *testing.B, arch string, batch int, train, grad bool) {
	m, err := models.New(arch, 10, 0)
	if err != nil {
		b.Fatal(err)
	}
	x, y := randBatch(rand.New(rand.NewPCG(0, 0)), batch, 32)
	tp := nn.NewTape(grad)
	b.ResetTimer()
	for range b.N {
		out := m.Forward(tp, nn.Const(x), train)
		if grad {
			m.Store().ZeroGrad()
			if err := tp.Backward(nn.CrossEntropy(tp, out, y)); err != nil {
				b.Fatal(err)
			}
		}
		tp.Reset()
	}
	b.ReportMetric(float64(batch*b.N)/b.Elapsed().Seconds(), "img/s")
}

func BenchmarkResNet20Train(b *testing.B) { benchModel(b, "resnet20", 128, true, true) }
func BenchmarkResNet20Infer(b *testing.B) { benchModel(b, "resnet20", 256, false, false) }
func BenchmarkResNet20Grad1(b *testing.B) { benchModel(b, "resnet20", 1, false, true) }
func BenchmarkWRN16Train(b *testing.B)    { benchModel(b, "wrn16-1", 128, true, true) }

// TestFeatureCosts checks that every white-box layout is timed, with a positive cost.
func TestFeatureCosts(t *testing.T) {
	m, err := models.New("resnet20", 10, 0)
	if err != nil {
		t.Fatal(err)
	}
	got, err := featureCosts(m, rand.New(rand.NewPCG(1, 1)), 0.01)
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range features.Layouts {
		if !(got[l] > 0) {
			t.Errorf("%s: %v ms per image", l, got[l])
		}
	}
}
