package nn

import (
	"fmt"

	"move/internal/kernels"
)

// Gram is the Gram matrix of each image's feature map, normalised by its size:
// G[n] = F[n]ᵀ·F[n] / (H·W) for F[n] the [H·W][C] features of image n; x [N][H][W][C] gives
// [N][C][C]. It is the texture statistic of style transfer (Gatys et al. 2016).
func Gram(tp *Tape, x *Var) *Var {
	xs := x.Shape()
	if len(xs) != 4 {
		panic(fmt.Sprintf("nn.Gram: input %v is not NHWC", xs))
	}
	n, hw, c := xs[0], xs[1]*xs[2], xs[3]
	xd := x.Data()
	inv := 1 / float32(hw)
	y := tp.out(tp.alloc(n, c, c), x)
	for b := range n {
		f := xd[b*hw*c : (b+1)*hw*c]
		kernels.Gemm(true, false, c, c, hw, inv, f, c, f, c, 0, y.Data()[b*c*c:], c)
	}
	tp.push(y, func() {
		if y.Grad == nil || !x.requires {
			return
		}
		// dF = F·(dG + dGᵀ)/(H·W)
		dx := tp.grad(x)
		sym := make([]float32, c*c)
		for b := range n {
			g := y.Grad.Data[b*c*c : (b+1)*c*c]
			for i := range c {
				for j := range c {
					sym[i*c+j] = g[i*c+j] + g[j*c+i]
				}
			}
			f := xd[b*hw*c : (b+1)*hw*c]
			kernels.Gemm(false, false, hw, c, c, inv, f, c, sym, c, 1, dx[b*hw*c:], c)
		}
	})
	return y
}

// MSELoss is the mean squared difference between a and a constant target of the same size.
func MSELoss(tp *Tape, a *Var, target []float32) *Var {
	if len(target) != a.Value.Len() {
		panic(fmt.Sprintf("nn.MSELoss: %d targets for %v", len(target), a.Shape()))
	}
	ad := a.Data()
	var s float64
	for i, v := range ad {
		d := float64(v - target[i])
		s += d * d
	}
	n := float32(len(ad))
	return scalarLoss(tp, s/float64(n), a, func(dx []float32, g float32) {
		k := 2 * g / n
		for i, v := range ad {
			dx[i] += k * (v - target[i])
		}
	})
}
