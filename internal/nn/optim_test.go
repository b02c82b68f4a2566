package nn

import (
	"math"
	"testing"

	"move/internal/tensor"
)

// Two steps of each optimiser on one parameter, against the update rules written out by hand
// (as torch.optim implements them).
func TestOptimizers(t *testing.T) {
	p := Leaf(tensor.From([]float32{1, -2}, 2))
	grads := [][]float32{{0.5, 0.25}, {-1, 2}}
	sgd := &SGD{Momentum: 0.9, WeightDecay: 0.1}
	w := []float64{1, -2}
	v := []float64{0, 0}
	for s, g := range grads {
		copy(p.Grad.Data, g)
		sgd.Step([]*Var{p}, 0.1)
		for j := range w {
			d := float64(g[j]) + 0.1*w[j]
			if s == 0 {
				v[j] = d
			} else {
				v[j] = 0.9*v[j] + d
			}
			w[j] -= 0.1 * v[j]
			if math.Abs(float64(p.Value.Data[j])-w[j]) > 1e-6 {
				t.Fatalf("SGD step %d: w[%d] = %g, want %g", s, j, p.Value.Data[j], w[j])
			}
		}
	}
	p = Leaf(tensor.From([]float32{1, -2}, 2))
	adam := NewAdam(0)
	w = []float64{1, -2}
	m, vv := []float64{0, 0}, []float64{0, 0}
	for s, g := range grads {
		copy(p.Grad.Data, g)
		adam.Step([]*Var{p}, 0.01)
		for j := range w {
			m[j] = 0.9*m[j] + 0.1*float64(g[j])
			vv[j] = 0.999*vv[j] + 0.001*float64(g[j])*float64(g[j])
			mh := m[j] / (1 - math.Pow(0.9, float64(s+1)))
			vh := vv[j] / (1 - math.Pow(0.999, float64(s+1)))
			w[j] -= 0.01 * mh / (math.Sqrt(vh) + 1e-8)
			if math.Abs(float64(p.Value.Data[j])-w[j]) > 1e-6 {
				t.Fatalf("Adam step %d: w[%d] = %g, want %g", s, j, p.Value.Data[j], w[j])
			}
		}
	}
}
