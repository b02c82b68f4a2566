//go:build amd64 && !purego

package kernels

import "golang.org/x/sys/cpu"

//go:noescape
func kern16x16AVX512(kc int, a, b, c *float32, ldc int, add int)

//go:noescape
func kern16x16StridedAVX512(kc int, a *float32, lda int, b, c *float32, ldc int, add int)

//go:noescape
func kern16x16AVX2(kc int, a, b, c *float32, ldc int, add int)

func kernels() map[string]microKernel {
	m := map[string]microKernel{"go": kernGo}
	if cpu.X86.HasAVX512F {
		m["avx512"] = kern16x16AVX512
	}
	if cpu.X86.HasAVX2 && cpu.X86.HasFMA {
		m["avx2"] = kern16x16AVX2
	}
	return m
}

// stridedKernels lists the micro-kernels that read A in place, by the name of the packed
// kernel they go with.
func stridedKernels() map[string]stridedKernel {
	m := map[string]stridedKernel{"go": kernStridedGo}
	if cpu.X86.HasAVX512F {
		m["avx512"] = kern16x16StridedAVX512
	}
	return m
}

func init() { UseKernel(Kernels()[0]) }
