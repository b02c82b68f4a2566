package nn

import (
	"math"
	"math/rand/v2"
	"testing"
)

// The fused inference path of ConvBatchNorm equals the two ops run separately.
func TestConvBatchNormFused(t *testing.T) {
	r := rand.New(rand.NewPCG(4, 4))
	for _, bias := range []bool{false, true} {
		for _, relu := range []bool{false, true} {
			s := NewStore()
			conv := NewConv(s, "c", 16, 32, 3, 2, 1, bias, r)
			if bias {
				for i := range conv.B.Data() {
					conv.B.Data()[i] = float32(r.NormFloat64())
				}
			}
			bn := NewBatchNorm(s, "bn", 32)
			for j := range 32 {
				bn.Mean.Data[j] = float32(r.NormFloat64())
				bn.Var.Data[j] = 0.5 + r.Float32()
				bn.Gamma.Data()[j] = float32(r.NormFloat64())
				bn.Beta.Data()[j] = float32(r.NormFloat64())
			}
			x := Const(randTensor(r, []int{3, 9, 9, 16}, false))
			fused := ConvBatchNorm(nil, x, conv, bn, false, relu)
			sep := BatchNormOp(nil, conv.Apply(nil, x), bn, false)
			if relu {
				sep = ReLU(nil, sep)
			}
			for i, v := range fused.Data() {
				if math.Abs(float64(v-sep.Data()[i])) > 1e-4*(1+math.Abs(float64(v))) {
					t.Fatalf("bias=%v relu=%v: element %d fused %g, separate %g", bias, relu, i, v, sep.Data()[i])
				}
			}
			res := Const(randTensor(r, fused.Shape(), false))
			fa := ConvBatchNormAddReLU(nil, x, conv, bn, res, false)
			sa := AddReLU(nil, BatchNormOp(nil, conv.Apply(nil, x), bn, false), res)
			for i, v := range fa.Data() {
				if math.Abs(float64(v-sa.Data()[i])) > 1e-4*(1+math.Abs(float64(v))) {
					t.Fatalf("with residual: element %d fused %g, separate %g", i, v, sa.Data()[i])
				}
			}
		}
	}
}
