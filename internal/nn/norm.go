package nn

import (
	"fmt"
	"math"

	"move/internal/kernels"
	"move/internal/parallel"
	"move/internal/tensor"
)

// BatchNorm holds the state of a batch-normalisation layer over the last (channel) axis.
type BatchNorm struct {
	Gamma, Beta *Var           // learned scale and shift, [C]
	Mean, Var   *tensor.Tensor // running statistics, [C], updated in training mode
	Momentum    float32        // weight of the new batch in the running averages (PyTorch: 0.1)
	Eps         float32
}

// channelSums returns, per channel, the sums of f(row, j) over all rows, reduced from one
// partial per worker in worker order (deterministic).
func channelSums(rows, c int, f func(partial []float64, lo, hi int)) []float64 {
	parts := make([][]float64, parallel.Workers())
	run := func(lo, hi, w int) {
		parts[w] = make([]float64, 2*c)
		f(parts[w], lo, hi)
	}
	if rows*c < 1<<15 {
		run(0, rows, 0)
	} else {
		parallel.For(rows, run)
	}
	out := make([]float64, 2*c)
	for _, p := range parts {
		for j, v := range p {
			out[j] += v
		}
	}
	return out
}

// ConvBatchNorm is batchNorm(conv(x, w)) with an optional ReLU. When nothing is recorded and
// the batch norm is in inference mode it runs as one fused pass (the normalisation is applied
// to each block of convolution output while in cache); otherwise it is the two ops.
func ConvBatchNorm(tp *Tape, x *Var, conv *Conv, bn *BatchNorm, train, relu bool) *Var {
	return convBatchNorm(tp, x, conv, bn, nil, train, relu)
}

// ConvBatchNormAddReLU is relu(batchNorm(conv(x)) + res), fused like ConvBatchNorm.
func ConvBatchNormAddReLU(tp *Tape, x *Var, conv *Conv, bn *BatchNorm, res *Var, train bool) *Var {
	return convBatchNorm(tp, x, conv, bn, res, train, true)
}

func convBatchNorm(tp *Tape, x *Var, conv *Conv, bn *BatchNorm, res *Var, train, relu bool) *Var {
	if train || tp.Recording() || tp.tracing() {
		y := conv.Apply(tp, x)
		switch {
		case res != nil:
			return AddReLU(tp, BatchNormOp(tp, y, bn, train), res)
		case relu:
			return BatchNormReLU(tp, y, bn, train)
		}
		return BatchNormOp(tp, y, bn, train)
	}
	g := convGeom(x, conv.W, conv.Stride, conv.Pad)
	c := g.Cout
	scale, shift := make([]float32, c), make([]float32, c)
	for j := range c {
		inv := float32(1 / math.Sqrt(float64(bn.Var.Data[j])+float64(bn.Eps)))
		scale[j] = bn.Gamma.Data()[j] * inv
		shift[j] = bn.Beta.Data()[j] - bn.Mean.Data[j]*scale[j]
		if conv.B != nil {
			shift[j] += conv.B.Data()[j] * scale[j]
		}
	}
	y := tp.out(tp.alloc(g.N, g.Ho, g.Wo, c))
	if res != nil {
		if !tensor.SameShape(res.Shape(), y.Shape()) {
			panic(fmt.Sprintf("nn.ConvBatchNormAddReLU: residual %v, output %v", res.Shape(), y.Shape()))
		}
		kernels.ConvForwardAffineAdd(g, x.Data(), conv.W.Data(), y.Data(), scale, shift, res.Data())
		return y
	}
	kernels.ConvForwardAffine(g, x.Data(), conv.W.Data(), y.Data(), scale, shift, relu)
	return y
}

// blockSums adds Σa and Σa·b over rows [lo, hi) per channel to p[0:c] and p[c:2c], summing
// blocks of 64 rows in float32 and the blocks in float64.
func blockSums(p []float64, a, b []float32, c, lo, hi int) {
	acc := make([]float32, 2*c)
	for r := lo; r < hi; r += 64 {
		e := min(hi, r+64)
		clear(acc)
		kernels.ChannelSums(acc, a[r*c:e*c], b[r*c:e*c], c)
		for j, v := range acc {
			p[j] += float64(v)
		}
	}
}

// BatchNormOp normalises x (any shape whose last axis has C channels) per channel. In
// training mode it uses the batch's mean and biased variance and updates the running
// statistics (with the unbiased variance, as PyTorch does); otherwise it uses the running ones.
func BatchNormOp(tp *Tape, x *Var, bn *BatchNorm, train bool) *Var {
	return batchNorm(tp, x, bn, train, false)
}

// BatchNormReLU is ReLU(BatchNormOp(x)) in one pass over memory each way.
func BatchNormReLU(tp *Tape, x *Var, bn *BatchNorm, train bool) *Var {
	return batchNorm(tp, x, bn, train, true)
}

func batchNorm(tp *Tape, x *Var, bn *BatchNorm, train, relu bool) *Var {
	xs := x.Shape()
	c := xs[len(xs)-1]
	rows := x.Value.Len() / c
	xd := x.Data()
	mean := make([]float32, c)
	invstd := make([]float32, c)
	if train {
		s := channelSums(rows, c, func(p []float64, lo, hi int) {
			blockSums(p, xd, xd, c, lo, hi)
		})
		for j := range c {
			m := s[j] / float64(rows)
			v := math.Max(s[c+j]/float64(rows)-m*m, 0)
			mean[j] = float32(m)
			invstd[j] = float32(1 / math.Sqrt(v+float64(bn.Eps)))
			unbiased := v
			if rows > 1 {
				unbiased = v * float64(rows) / float64(rows-1)
			}
			bn.Mean.Data[j] = (1-bn.Momentum)*bn.Mean.Data[j] + bn.Momentum*float32(m)
			bn.Var.Data[j] = (1-bn.Momentum)*bn.Var.Data[j] + bn.Momentum*float32(unbiased)
		}
	} else {
		for j := range c {
			mean[j] = bn.Mean.Data[j]
			invstd[j] = float32(1 / math.Sqrt(float64(bn.Var.Data[j])+float64(bn.Eps)))
		}
	}
	gamma, beta := bn.Gamma.Data(), bn.Beta.Data()
	scale := make([]float32, c)
	shift := make([]float32, c)
	for j := range c {
		scale[j] = gamma[j] * invstd[j]
		shift[j] = beta[j] - mean[j]*scale[j]
	}
	y := tp.out(tp.alloc(xs...), x, bn.Gamma, bn.Beta)
	yd := y.Data()
	pfor(rows, func(lo, hi int) {
		kernels.ChannelAffine(yd[lo*c:hi*c], xd[lo*c:hi*c], scale, shift, c, relu)
	})
	if tp.tracing() {
		tp.traceFused(Node{Op: "BatchNormalization", In: []*Var{x, bn.Gamma, bn.Beta}, Out: y, BN: bn, Train: train}, relu)
	}
	tp.push(y, func() {
		if y.Grad == nil {
			return
		}
		dy := y.Grad.Data
		if relu {
			// Mask in place: y's gradient is dead after this step.
			pfor(len(dy), func(lo, hi int) { kernels.ReluMask(dy[lo:hi], yd[lo:hi]) })
		}
		// dbeta = Σ dy, dgamma = Σ dy·x̂ with x̂ = (x-mean)·invstd.
		s := channelSums(rows, c, func(p []float64, lo, hi int) {
			blockSums(p, dy, xd, c, lo, hi)
		})
		for j := range c {
			s[c+j] = (s[c+j] - float64(mean[j])*s[j]) * float64(invstd[j]) // Σ dy·x̂
		}
		if tp.perEx && (bn.Beta.requires || bn.Gamma.requires) {
			if train {
				panic("nn: per-example gradients of a batch norm in training mode: its batch statistics couple the examples")
			}
			bnPerExample(tp, bn, xs[0], rows, c, dy, xd, mean, invstd)
		} else if bn.Beta.requires {
			g := tp.grad(bn.Beta)
			for j := range c {
				g[j] += float32(s[j])
			}
		}
		if bn.Gamma.requires && !tp.perEx {
			g := tp.grad(bn.Gamma)
			for j := range c {
				g[j] += float32(s[c+j])
			}
		}
		if !x.requires {
			return
		}
		// Training: dx = γ·invstd·(dy - mean(dy) - x̂·mean(dy·x̂)); eval: dx = γ·invstd·dy.
		// As k1·dy + k2·x + k3 per channel.
		k1, k2, k3 := scale, make([]float32, c), make([]float32, c)
		if train {
			for j := range c {
				a := float32(s[j] / float64(rows))
				b := float32(s[c+j]/float64(rows)) * invstd[j]
				k2[j] = -scale[j] * b
				k3[j] = scale[j] * (mean[j]*b - a)
			}
		}
		dx, over := tp.gradFor(x)
		pfor(rows, func(lo, hi int) {
			kernels.ChannelAffine2(dx[lo*c:hi*c], xd[lo*c:hi*c], dy[lo*c:hi*c], k1, k2, k3, c, !over)
		})
	})
	return y
}

// bnPerExample adds each example's dbeta = Σ dy and dgamma = Σ dy·x̂ (over its rows) to the
// parameters' ExGrad, for a batch of n examples of rows/n rows each.
func bnPerExample(tp *Tape, bn *BatchNorm, n, rows, c int, dy, xd, mean, invstd []float32) {
	var db, dg []float32
	if bn.Beta.requires {
		db = tp.exGrad(bn.Beta, n)
	}
	if bn.Gamma.requires {
		dg = tp.exGrad(bn.Gamma, n)
	}
	per := rows / n
	s := make([]float64, 2*c)
	for k := range n {
		clear(s)
		blockSums(s, dy, xd, c, k*per, (k+1)*per)
		for j := range c {
			if db != nil {
				db[k*c+j] += float32(s[j])
			}
			if dg != nil {
				dg[k*c+j] += float32((s[c+j] - float64(mean[j])*s[j]) * float64(invstd[j]))
			}
		}
	}
}
