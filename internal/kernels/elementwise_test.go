package kernels

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
)

// Every elementwise kernel against its definition, on both paths and lengths with tails.
func TestElementwise(t *testing.T) {
	r := rand.New(rand.NewPCG(2, 9))
	for _, kn := range Kernels() {
		for _, n := range []int{1, 15, 16, 33, 100} {
			t.Run(fmt.Sprintf("%s/%d", kn, n), func(t *testing.T) {
				withKernel(t, kn, func() {
					a, b, c := randSlice(r, n), randSlice(r, n), randSlice(r, n)
					check := func(what string, got []float32, want func(i int) float32) {
						for i := range got {
							if got[i] != want(i) {
								t.Fatalf("%s[%d] = %g, want %g", what, i, got[i], want(i))
							}
						}
					}
					d := append([]float32(nil), a...)
					AddTo(d, b)
					check("AddTo", d, func(i int) float32 { return a[i] + b[i] })
					// Ties and NaNs keep dst.
					s := append([]float32(nil), b...)
					s[0], s[n/2] = a[0], float32(math.NaN())
					d = append([]float32(nil), a...)
					MaxTo(d, s)
					check("MaxTo", d, func(i int) float32 {
						if s[i] > a[i] {
							return s[i]
						}
						return a[i]
					})
					arg := make([]int32, n)
					for i := range arg {
						arg[i] = -1
					}
					d = append([]float32(nil), a...)
					MaxArgTo(d, arg, s, 1000)
					for i := range d {
						want, wantArg := a[i], int32(-1)
						if s[i] > a[i] {
							want, wantArg = s[i], 1000+int32(i)
						}
						if d[i] != want || arg[i] != wantArg {
							t.Fatalf("MaxArgTo[%d] = %g at %d, want %g at %d", i, d[i], arg[i], want, wantArg)
						}
					}
					for _, relu := range []bool{false, true} {
						Add3(d, a, b, relu)
						check("Add3", d, func(i int) float32 {
							if v := a[i] + b[i]; !relu || v > 0 {
								return v
							}
							return 0
						})
					}
					d = append([]float32(nil), a...)
					ReluMask(d, b)
					check("ReluMask", d, func(i int) float32 {
						if b[i] > 0 {
							return a[i]
						}
						return 0
					})
					d = append([]float32(nil), c...)
					ReluMaskAdd(d, a, b)
					check("ReluMaskAdd", d, func(i int) float32 {
						if b[i] > 0 {
							return c[i] + a[i]
						}
						return c[i]
					})
					Relu(d, a)
					check("Relu", d, func(i int) float32 { return max(a[i], 0) })
				})
			})
		}
	}
}
