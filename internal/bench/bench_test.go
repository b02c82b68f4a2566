package bench

import (
	"math/rand/v2"
	"testing"

	"move/internal/features"
	"move/internal/models"
	"move/internal/nn"
)

func benchModel(b *testing.B, arch string, batch int, train, grad bool) {
	benchModelAt(b, arch, 32, batch, train, grad, false)
}

// benchModelAt times a forward pass (with the backward pass when grad; per-example parameter
// gradients when perExample) of arch on batch images of size x size.
func benchModelAt(b *testing.B, arch string, size, batch int, train, grad, perExample bool) {
	m, err := models.New(arch, 10, 0)
	if err != nil {
		b.Fatal(err)
	}
	x, y := randBatch(rand.New(rand.NewPCG(0, 0)), batch, size)
	tp := nn.NewTape(grad)
	tp.PerExample(perExample)
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
func BenchmarkResNet20PerExample(b *testing.B) {
	benchModelAt(b, "resnet20", 32, 32, false, true, true)
}
func BenchmarkResNet18Train224(b *testing.B) { benchModelAt(b, "resnet18", 224, 16, true, true, false) }
func BenchmarkResNet18Infer224(b *testing.B) {
	benchModelAt(b, "resnet18", 224, 32, false, false, false)
}

// TestFeatureCosts checks that every white-box layout and the two families without a
// classifier are timed, with a positive cost.
func TestFeatureCosts(t *testing.T) {
	m, err := models.New("resnet20", 10, 0)
	if err != nil {
		t.Fatal(err)
	}
	got, err := featureCosts(m, rand.New(rand.NewPCG(1, 1)), 0.01, 32)
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range append(append([]string(nil), features.Layouts...), features.GradSimilarity, features.GainTop) {
		if !(got[l] > 0) {
			t.Errorf("%s: %v ms per image", l, got[l])
		}
	}
}

// TestModelAtLargerSizes measures on images above 64 pixels with the smaller batches the peer
// script uses there, and records the size.
func TestModelAtLargerSizes(t *testing.T) {
	if tb, ib := Batches(224); tb != 16 || ib != 32 {
		t.Errorf("batches at 224 pixels: %d and %d, want 16 and 32", tb, ib)
	}
	if tb, ib := Batches(32); tb != 128 || ib != 256 {
		t.Errorf("batches at 32 pixels: %d and %d, want torch_bench.py's 128 and 256", tb, ib)
	}
	r, err := Model("resnet20", 0.001, 72)
	if err != nil {
		t.Fatal(err)
	}
	if r.Size != 72 || r.TrainBatch != 16 || r.InferBatch != 32 || !(r.TrainImgS > 0 && r.InferImgS > 0 && r.Grad1Ms > 0) {
		t.Errorf("resnet20 at 72 pixels: %+v", r)
	}
	if _, err := Model("resnet20", 0.001, 4); err == nil {
		t.Error("4-pixel images were accepted")
	}
}
