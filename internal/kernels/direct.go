package kernels

import (
	"unsafe"

	"move/internal/parallel"
)

// stridedKernel is a micro-kernel whose A operand is read in place: row i of step p is
// a[i·lda+p]. It adds to (or with add == 0 overwrites) the MR x NR tile at c.
type stridedKernel func(kc int, a *float32, lda int, b, c *float32, ldc int, add int)

// kernStridedGo is the pure-Go strided micro-kernel, the reference of the assembly one.
func kernStridedGo(kc int, a *float32, lda int, b, c *float32, ldc int, add int) {
	as := unsafe.Slice(a, (MR-1)*lda+kc)
	bs := unsafe.Slice(b, kc*NR)
	cs := unsafe.Slice(c, (MR-1)*ldc+NR)
	var acc [MR][NR]float32
	for i := range MR {
		ar := as[i*lda : i*lda+kc]
		row := &acc[i]
		for p, ai := range ar {
			bp := (*[NR]float32)(bs[p*NR : p*NR+NR])
			for j := range NR {
				row[j] += ai * bp[j]
			}
		}
	}
	for i := range MR {
		row := cs[i*ldc : i*ldc+NR]
		if add == 0 {
			copy(row, acc[i][:])
			continue
		}
		for j := range NR {
			row[j] += acc[i][j]
		}
	}
}

// direct reports whether a convolution runs as a direct (implicit-GEMM) convolution: the
// micro-kernel reads each tile's receptive fields straight from a zero-padded copy of the
// image, MR consecutive output pixels of one output row at a time, one kernel row per call,
// so no im2col block is built. It needs whole tiles (Wo and Cout multiples of 16) and one
// K block; the assembly strided kernel exists for AVX-512.
func (g ConvGeom) direct() (stridedKernel, bool) {
	k, ok := stridedKernels()[kernelName]
	if !ok || kernelName == "go" && !forceDirect {
		return nil, false
	}
	return k, !g.pointwise() && g.Wo%MR == 0 && g.Cout%NR == 0 && g.K() <= kcBlock
}

// forceDirect makes the direct path run with the pure-Go kernel too (tests).
var forceDirect = false

// padded copies x into a zero-padded image [N][H+2p][W+2p][C].
func (g ConvGeom) padded(x []float32) *[]float32 {
	hp, wp := g.H+2*g.Pad, g.W+2*g.Pad
	buf := getBuf(g.N * hp * wp * g.C)
	xp := *buf
	C := g.C
	parallel.For(g.N*hp, func(lo, hi, _ int) {
		for r := lo; r < hi; r++ {
			b, y := r/hp, r%hp
			row := xp[r*wp*C : (r+1)*wp*C]
			iy := y - g.Pad
			if iy < 0 || iy >= g.H {
				clear(row)
				continue
			}
			clear(row[:g.Pad*C])
			copy(row[g.Pad*C:(g.Pad+g.W)*C], x[(b*g.H+iy)*g.W*C:(b*g.H+iy+1)*g.W*C])
			clear(row[(g.Pad+g.W)*C:])
		}
	})
	return buf
}

// directRows computes output pixels [r0, r1) (whole output rows) of y = conv(x, w) into out
// (adding when accumulate), from the padded image xp and the packed weights pb.
func (g ConvGeom) directRows(kern stridedKernel, xp []float32, pb *PackedB, out []float32, r0, r1 int, accumulate bool) {
	wp := g.W + 2*g.Pad
	hp := g.H + 2*g.Pad
	C, S := g.C, g.Stride
	seg := g.KW * C // one kernel row: contiguous in the padded image
	lda := S * C
	for r := r0; r < r1; r += MR {
		b, rem := r/(g.Ho*g.Wo), r%(g.Ho*g.Wo)
		oy, ox := rem/g.Wo, rem%g.Wo
		c := out[(r-r0)*g.Cout:]
		for j0 := 0; j0 < g.Cout; j0 += NR {
			bs := pb.sliver(0, g.K(), j0)
			for ky := range g.KH {
				a := ((b*hp+oy*S+ky)*wp + ox*S) * C
				add := 1
				if ky == 0 && !accumulate {
					add = 0
				}
				kern(seg, &xp[a], lda, &bs[ky*seg*NR], &c[j0], g.Cout, add)
			}
		}
	}
}
