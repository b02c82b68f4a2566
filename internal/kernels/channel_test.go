package kernels

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
)

// The assembly and Go channel kernels agree, for widths that take either path.
func TestChannelKernels(t *testing.T) {
	r := rand.New(rand.NewPCG(8, 8))
	for _, kn := range Kernels() {
		for _, c := range []int{3, 16, 32, 48, 64, 20} {
			for _, rows := range []int{1, 7, 64} {
				t.Run(fmt.Sprintf("%s/c%d/rows%d", kn, c, rows), func(t *testing.T) {
					withKernel(t, kn, func() {
						x, dy := randSlice(r, rows*c), randSlice(r, rows*c)
						k1, k2, k3 := randSlice(r, c), randSlice(r, c), randSlice(r, c)
						for _, relu := range []bool{false, true} {
							y := make([]float32, rows*c)
							ChannelAffine(y, x, k1, k2, c, relu)
							for i := range y {
								want := x[i]*k1[i%c] + k2[i%c]
								if relu {
									want = max(want, 0)
								}
								if math.Abs(float64(y[i]-want)) > 1e-5 {
									t.Fatalf("affine relu=%v [%d] = %g, want %g", relu, i, y[i], want)
								}
							}
						}
						acc := randSlice(r, 2*c)
						want := append([]float32(nil), acc...)
						for i := range x {
							want[i%c] += dy[i]
							want[c+i%c] += dy[i] * x[i]
						}
						ChannelSums(acc, dy, x, c)
						for j := range acc {
							if math.Abs(float64(acc[j]-want[j])) > 1e-4*(1+math.Abs(float64(want[j]))) {
								t.Fatalf("sums[%d] = %g, want %g", j, acc[j], want[j])
							}
						}
						for _, accu := range []bool{false, true} {
							dst := randSlice(r, rows*c)
							orig := append([]float32(nil), dst...)
							ChannelAffine2(dst, x, dy, k1, k2, k3, c, accu)
							for i := range dst {
								w := k1[i%c]*dy[i] + k2[i%c]*x[i] + k3[i%c]
								if accu {
									w += orig[i]
								}
								if math.Abs(float64(dst[i]-w)) > 1e-5*(1+math.Abs(float64(w))) {
									t.Fatalf("affine2 acc=%v [%d] = %g, want %g", accu, i, dst[i], w)
								}
							}
						}
					})
				})
			}
		}
	}
}
