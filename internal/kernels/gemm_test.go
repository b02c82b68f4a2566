package kernels

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
)

func randSlice(r *rand.Rand, n int) []float32 {
	s := make([]float32, n)
	for i := range s {
		s[i] = float32(r.NormFloat64())
	}
	return s
}

// naiveGemm is the float64 reference for C = alpha*op(A)*op(B) + beta*C.
func naiveGemm(transA, transB bool, m, n, k int, alpha float64, a []float32, lda int, b []float32, ldb int, beta float64, c []float32, ldc int) []float64 {
	out := make([]float64, m*n)
	for i := range m {
		for j := range n {
			var s float64
			for p := range k {
				av := a[i*lda+p]
				if transA {
					av = a[p*lda+i]
				}
				bv := b[p*ldb+j]
				if transB {
					bv = b[j*ldb+p]
				}
				s += float64(av) * float64(bv)
			}
			out[i*n+j] = alpha*s + beta*float64(c[i*ldc+j])
		}
	}
	return out
}

func withKernel(t testing.TB, name string, f func()) {
	old := Kernel()
	if !UseKernel(name) {
		t.Skipf("kernel %s not available on this CPU", name)
	}
	defer UseKernel(old)
	f()
}

func TestGemmMatchesReference(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	shapes := [][3]int{{1, 1, 1}, {24, 16, 1}, {25, 17, 3}, {7, 100, 300}, {130, 33, 257}, {300, 64, 576}, {2048, 16, 27}, {5, 5, 600}}
	for _, kn := range []string{"go", "avx2", "avx512"} {
		for _, sh := range shapes {
			for _, tr := range [][2]bool{{false, false}, {true, false}, {false, true}, {true, true}} {
				m, n, k := sh[0], sh[1], sh[2]
				name := fmt.Sprintf("%s/%dx%dx%d/tA=%v/tB=%v", kn, m, n, k, tr[0], tr[1])
				t.Run(name, func(t *testing.T) {
					withKernel(t, kn, func() {
						lda, ldb, ldc := k+3, n+1, n+2
						if tr[0] {
							lda = m + 3
						}
						if tr[1] {
							ldb = k + 1
						}
						a := randSlice(r, max(m, k)*lda)
						b := randSlice(r, max(k, n)*ldb)
						c := randSlice(r, m*ldc)
						want := naiveGemm(tr[0], tr[1], m, n, k, 0.5, a, lda, b, ldb, 2, c, ldc)
						Gemm(tr[0], tr[1], m, n, k, 0.5, a, lda, b, ldb, 2, c, ldc)
						for i := range m {
							for j := range n {
								got, w := float64(c[i*ldc+j]), want[i*n+j]
								if math.Abs(got-w) > 1e-4*math.Sqrt(float64(k))*(1+math.Abs(w)) {
									t.Fatalf("C[%d,%d] = %g, want %g", i, j, got, w)
								}
							}
						}
					})
				})
			}
		}
	}
}

// The assembly kernels and the pure-Go kernel must agree on random shapes.
func TestKernelsAgree(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for _, kn := range Kernels() {
		if kn == "go" {
			continue
		}
		for trial := range 20 {
			m, n, k := 1+r.IntN(200), 1+r.IntN(80), 1+r.IntN(700)
			a, b := randSlice(r, m*k), randSlice(r, k*n)
			c1, c2 := make([]float32, m*n), make([]float32, m*n)
			withKernel(t, "go", func() { Gemm(false, false, m, n, k, 1, a, k, b, n, 0, c1, n) })
			withKernel(t, kn, func() { Gemm(false, false, m, n, k, 1, a, k, b, n, 0, c2, n) })
			for i := range c1 {
				if d := math.Abs(float64(c1[i] - c2[i])); d > 1e-4*math.Sqrt(float64(k))*(1+math.Abs(float64(c1[i]))) {
					t.Fatalf("%s trial %d (%dx%dx%d): element %d: go %g, %s %g", kn, trial, m, n, k, i, c1[i], kn, c2[i])
				}
			}
		}
	}
}

func BenchmarkGemm(b *testing.B) {
	// Shapes of resnet20 at batch 128: forward of a 16-, 32- and 64-channel 3x3 convolution
	// (rows = output pixels, n = output channels, k = 9*input channels).
	for _, sh := range [][3]int{{131072, 16, 144}, {32768, 32, 288}, {8192, 64, 576}, {1024, 16, 144}} {
		for _, kn := range Kernels() {
			m, n, k := sh[0], sh[1], sh[2]
			b.Run(fmt.Sprintf("%s/%dx%dx%d", kn, m, n, k), func(b *testing.B) {
				r := rand.New(rand.NewPCG(1, 1))
				a, bb, c := randSlice(r, m*k), randSlice(r, k*n), make([]float32, m*n)
				withKernel(b, kn, func() {
					b.ResetTimer()
					for range b.N {
						Gemm(false, false, m, n, k, 1, a, k, bb, n, 0, c, n)
					}
					b.ReportMetric(float64(2*m*n*k)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
				})
			})
		}
	}
}

// BenchmarkPackBTransposed packs a convolution's weights ([Cout][K], read transposed) as
// each forward pass does: resnet18's last 3x3 convolution.
func BenchmarkPackBTransposed(b *testing.B) {
	k, n := 4608, 512
	w := make([]float32, k*n)
	for i := range w {
		w[i] = float32(i % 7)
	}
	var pb PackedB
	b.SetBytes(int64(4 * k * n))
	for b.Loop() {
		PackB(&pb, w, k, true, k, n, 1)
	}
}
