package nn

import (
	"math"

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

// BatchNormOp normalises x (any shape whose last axis has C channels) per channel. In
// training mode it uses the batch's mean and biased variance and updates the running
// statistics (with the unbiased variance, as PyTorch does); otherwise it uses the running ones.
func BatchNormOp(tp *Tape, x *Var, bn *BatchNorm, train bool) *Var {
	xs := x.Shape()
	c := xs[len(xs)-1]
	rows := x.Value.Len() / c
	xd := x.Data()
	mean := make([]float32, c)
	invstd := make([]float32, c)
	if train {
		s := channelSums(rows, c, func(p []float64, lo, hi int) {
			for r := lo; r < hi; r++ {
				row := xd[r*c : (r+1)*c]
				for j, v := range row {
					p[j] += float64(v)
					p[c+j] += float64(v) * float64(v)
				}
			}
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
		for r := lo; r < hi; r++ {
			xr, yr := xd[r*c:(r+1)*c], yd[r*c:(r+1)*c]
			for j := range xr {
				yr[j] = xr[j]*scale[j] + shift[j]
			}
		}
	})
	tp.push(y, func() {
		if y.Grad == nil {
			return
		}
		dy := y.Grad.Data
		// dbeta = Σ dy, dgamma = Σ dy·x̂ with x̂ = (x-mean)·invstd.
		s := channelSums(rows, c, func(p []float64, lo, hi int) {
			for r := lo; r < hi; r++ {
				xr, dr := xd[r*c:(r+1)*c], dy[r*c:(r+1)*c]
				for j := range xr {
					p[j] += float64(dr[j])
					p[c+j] += float64(dr[j]) * float64((xr[j]-mean[j])*invstd[j])
				}
			}
		})
		if bn.Beta.requires {
			g := tp.grad(bn.Beta)
			for j := range c {
				g[j] += float32(s[j])
			}
		}
		if bn.Gamma.requires {
			g := tp.grad(bn.Gamma)
			for j := range c {
				g[j] += float32(s[c+j])
			}
		}
		if !x.requires {
			return
		}
		dx := tp.grad(x)
		if !train {
			// Statistics are constants: dx = dy·γ·invstd.
			pfor(rows, func(lo, hi int) {
				for r := lo; r < hi; r++ {
					dr, xr := dy[r*c:(r+1)*c], dx[r*c:(r+1)*c]
					for j := range dr {
						xr[j] += dr[j] * scale[j]
					}
				}
			})
			return
		}
		// dx = γ·invstd·(dy - mean(dy) - x̂·mean(dy·x̂)).
		a := make([]float32, c)
		b := make([]float32, c)
		for j := range c {
			a[j] = float32(s[j] / float64(rows))
			b[j] = float32(s[c+j] / float64(rows))
		}
		pfor(rows, func(lo, hi int) {
			for r := lo; r < hi; r++ {
				xr, dr, gr := xd[r*c:(r+1)*c], dy[r*c:(r+1)*c], dx[r*c:(r+1)*c]
				for j := range xr {
					xh := (xr[j] - mean[j]) * invstd[j]
					gr[j] += scale[j] * (dr[j] - a[j] - xh*b[j])
				}
			}
		})
	})
	return y
}
