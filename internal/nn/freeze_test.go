package nn

import (
	"math/rand/v2"
	"testing"

	"move/internal/tensor"
)

// A frozen layer passes the gradient to its input and leaves its weights' gradients alone;
// unfrozen again, it computes them as before.
func TestFreeze(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	s := NewStore()
	conv := NewConv(s, "c", 3, 4, 3, 1, 1, true, rng)
	x := tensor.New(2, 5, 5, 3)
	for i := range x.Data {
		x.Data[i] = float32(rng.NormFloat64())
	}
	run := func() (*Var, float64) {
		s.ZeroGrad()
		in := Leaf(x)
		tp := NewTape(true)
		if err := tp.Backward(Mean(tp, Square(tp, conv.Apply(tp, in)))); err != nil {
			t.Fatal(err)
		}
		var wg float64
		for _, v := range conv.W.Grad.Data {
			wg += float64(v * v)
		}
		return in, wg
	}
	s.Freeze(true)
	in, wg := run()
	var ig float64
	for _, v := range in.Grad.Data {
		ig += float64(v * v)
	}
	if wg != 0 || ig == 0 {
		t.Errorf("frozen: weight gradient norm² %g (want 0), input gradient norm² %g (want > 0)", wg, ig)
	}
	s.Freeze(false)
	if _, wg = run(); wg == 0 {
		t.Error("unfrozen: no weight gradient")
	}
}
