package nn

import (
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"move/internal/tensor"
)

// perExampleNet is a small network with every operation that supports per-example
// gradients: a strided, padded convolution with bias, a batch norm in inference mode with a
// fused ReLU, a pointwise convolution, another batch norm, global pooling and a dense layer.
type perExampleNet struct {
	c1, c2  *Conv
	b1, b2  *BatchNorm
	d       *Dense
	store   *Store
	trainBN bool
}

func newPerExampleNet(rng *rand.Rand) *perExampleNet {
	s := NewStore()
	n := &perExampleNet{store: s,
		c1: NewConv(s, "c1", 3, 6, 3, 2, 1, true, rng), b1: NewBatchNorm(s, "b1", 6),
		c2: NewConv(s, "c2", 6, 5, 1, 1, 0, false, rng), b2: NewBatchNorm(s, "b2", 5),
		d: NewDense(s, "d", 5, 4, rng)}
	for _, bn := range []*BatchNorm{n.b1, n.b2} { // statistics and affine terms away from 0/1
		for j := range bn.Mean.Data {
			bn.Mean.Data[j] = float32(rng.NormFloat64() * 0.1)
			bn.Var.Data[j] = float32(0.5 + rng.Float64())
			bn.Gamma.Data()[j] = float32(rng.NormFloat64())
			bn.Beta.Data()[j] = float32(rng.NormFloat64() * 0.3)
		}
	}
	return n
}

func (n *perExampleNet) forward(tp *Tape, x *Var) *Var {
	h := n.b1.ApplyReLU(tp, n.c1.Apply(tp, x), n.trainBN)
	h = n.b2.Apply(tp, n.c2.Apply(tp, h), n.trainBN)
	return n.d.Apply(tp, GlobalAvgPool(tp, h))
}

// One batched pass in per-example mode gives, for every parameter and example, 1/N of what a
// pass over that example alone gives (the loss is the batch mean), to float32 rounding, and
// leaves Grad untouched. (The one-example gradients are checked against finite differences
// in grad_test.go.)
func TestPerExampleGradientsMatchOnePassPerExample(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	net := newPerExampleNet(rng)
	const N, S = 5, 7
	x := tensor.New(N, S, S, 3)
	for i := range x.Data {
		x.Data[i] = float32(rng.NormFloat64())
	}
	labels := []int{0, 3, 1, 2, 3}
	params := net.store.Params()
	names := net.store.ParamNames()

	// One example at a time: the reference.
	want := make([][][]float32, N) // [example][param]
	tp := NewTape(true)
	for k := range N {
		net.store.ZeroGrad()
		xk := tensor.From(x.Data[k*S*S*3:(k+1)*S*S*3], 1, S, S, 3)
		if err := tp.Backward(CrossEntropy(tp, net.forward(tp, Const(xk)), labels[k:k+1])); err != nil {
			t.Fatal(err)
		}
		tp.Reset()
		for _, p := range params {
			want[k] = append(want[k], append([]float32(nil), p.Grad.Data...))
		}
	}

	net.store.ZeroGrad()
	tp.PerExample(true)
	if err := tp.Backward(CrossEntropy(tp, net.forward(tp, Const(x)), labels)); err != nil {
		t.Fatal(err)
	}
	tp.Reset()
	for i, p := range params {
		for _, g := range p.Grad.Data {
			if g != 0 {
				t.Fatalf("%s: per-example mode summed a gradient into Grad", names[i])
			}
		}
		if p.ExGrad == nil || p.ExGrad.Shape[0] != N || p.ExGrad.Len() != N*p.Value.Len() {
			t.Fatalf("%s: per-example gradient %v for %d examples of shape %v", names[i], p.ExGrad, N, p.Shape())
		}
		size := p.Value.Len()
		for k := range N {
			var scale float64
			for _, w := range want[k][i] {
				scale = math.Max(scale, math.Abs(float64(w)))
			}
			for j := range size {
				got := float64(p.ExGrad.Data[k*size+j]) * N
				if d := math.Abs(got - float64(want[k][i][j])); d > 1e-5*(1+scale) {
					t.Fatalf("%s, example %d, element %d: %g batched, %g alone", names[i], k, j, got, want[k][i][j])
				}
			}
		}
	}

	// Batch norm in training mode couples the examples: refused.
	net.trainBN = true
	func() {
		defer func() {
			if r := recover(); r == nil || !strings.Contains(r.(string), "training mode") {
				t.Errorf("per-example gradients through a training-mode batch norm: %v", r)
			}
		}()
		_ = tp.Backward(CrossEntropy(tp, net.forward(tp, Const(x)), labels))
	}()
	tp.Reset()
	net.trainBN = false

	// An operation without per-example support that reaches a parameter: refused.
	leaf := Leaf(tensor.New(N, 4))
	func() {
		defer func() {
			if r := recover(); r == nil || !strings.Contains(r.(string), "does not support") {
				t.Errorf("per-example gradients through Add to a parameter: %v", r)
			}
		}()
		_ = tp.Backward(CrossEntropy(tp, Add(tp, net.forward(tp, Const(x)), leaf), labels))
	}()
	tp.Reset()
}
