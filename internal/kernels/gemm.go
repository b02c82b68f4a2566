package kernels

import (
	"sync"

	"move/internal/parallel"
)

// Register tile of the micro-kernel: MR rows of A by NR columns of B.
const (
	MR = 16
	NR = 16
)

// Cache blocking: a kcBlock-deep sliver of B (16 KiB) and one of A (16 KiB) stay in L1 while
// an mcBlock x kcBlock block of A (128 KiB) stays in L2. kcBlock is also the fixed row stride
// of a packed A sliver (the assembly kernels address rows by constant displacements).
const (
	kcBlock = 576
	mcBlock = 8 * MR
)

// microKernel adds to the MR x NR tile at c (row stride ldc) the product of a packed A sliver
// (MR rows of kc values at a stride of kcBlock) and a packed B sliver (kc steps of NR values);
// with add == 0 it overwrites the tile with the product instead.
type microKernel func(kc int, a, b, c *float32, ldc int, add int)

var (
	kernel     microKernel = kernGo
	kernelName             = "go"
)

// Kernel names the micro-kernel in use: "avx512", "avx2" or "go".
func Kernel() string { return kernelName }

// UseKernel selects the micro-kernel by name and reports whether it is available on this CPU.
// Tests use it to compare the assembly and pure-Go paths.
func UseKernel(name string) bool {
	k, ok := kernels()[name]
	if ok {
		kernel, kernelName = k, name
	}
	return ok
}

// Kernels lists the micro-kernels this CPU can run, fastest first.
func Kernels() []string {
	var out []string
	for _, n := range []string{"avx512", "avx2", "go"} {
		if _, ok := kernels()[n]; ok {
			out = append(out, n)
		}
	}
	return out
}

func kernGo(kc int, a, b, c *float32, ldc int, add int) {
	kernStridedGo(kc, a, kcBlock, b, c, ldc, add)
}

// PackedB is the B operand of a GEMM packed for the micro-kernel: for each block of kcBlock
// rows, NR-wide column slivers stored step by step, zero-padded to a multiple of NR columns.
// Packing once and reusing it over many A row blocks (or many calls) is the point of the type.
type PackedB struct {
	K, N int
	Data []float32
}

func roundUp(x, m int) int { return (x + m - 1) / m * m }

// PackB packs op(B) (k x n) scaled by alpha into dst, reusing dst.Data when large enough.
func PackB(dst *PackedB, b []float32, ldb int, transB bool, k, n int, alpha float32) {
	dst.pack(k, n, func(out []float32, p0, kc, j0, w int) {
		if !transB && alpha == 1 && w == NR && useVecAsm() {
			_ = b[(p0+kc-1)*ldb+j0+NR-1] // bounds, once for the whole sliver
			gatherRows16AVX512(&out[0], &b[p0*ldb+j0], kc, ldb)
			return
		}
		if transB && w == NR {
			packTransposed(out, b[j0*ldb+p0:], ldb, kc, alpha)
			return
		}
		for p := range kc {
			o := out[p*NR : p*NR+NR]
			if transB {
				for j := range w {
					o[j] = alpha * b[(j0+j)*ldb+p0+p]
				}
			} else {
				src := b[(p0+p)*ldb+j0 : (p0+p)*ldb+j0+w]
				if alpha == 1 {
					copy(o, src)
				} else {
					for j, v := range src {
						o[j] = alpha * v
					}
				}
			}
			for j := w; j < NR; j++ {
				o[j] = 0
			}
		}
	})
}

// pack sizes dst for a k x n operand and calls fill for each sliver: out receives columns
// [j0, j0+w) of rows [p0, p0+kc) (w <= NR; fill zeroes the rest of each NR-wide row).
func (dst *PackedB) pack(k, n int, fill func(out []float32, p0, kc, j0, w int)) {
	np := roundUp(n, NR)
	if cap(dst.Data) < k*np {
		dst.Data = make([]float32, k*np)
	}
	dst.Data = dst.Data[:k*np]
	dst.K, dst.N = k, n
	for p0 := 0; p0 < k; p0 += kcBlock {
		kc := min(kcBlock, k-p0)
		base := p0 * np
		for j0 := 0; j0 < np; j0 += NR {
			fill(dst.Data[base+j0*kc:base+j0*kc+kc*NR], p0, kc, j0, min(NR, n-j0))
		}
	}
}

// packTransposed writes out[p·NR+j] = alpha·b[j·ldb+p] for j < NR, p < kc (a sliver of NR
// rows of b, transposed), in blocks of NR x NR so that each row is read in order and the
// block being written stays in the L1 cache.
func packTransposed(out, b []float32, ldb, kc int, alpha float32) {
	if alpha == 1 && useVecAsm() && (NR-1)*ldb < 1<<31 {
		_ = b[(NR-1)*ldb+kc-1] // bounds, once for the whole sliver
		_ = out[kc*NR-1]
		gatherCols16AVX512(&out[0], &b[0], kc, ldb)
		return
	}
	for p0 := 0; p0 < kc; p0 += NR {
		pe := min(NR, kc-p0)
		blk := out[p0*NR : (p0+pe)*NR]
		for j := range NR {
			row := b[j*ldb+p0 : j*ldb+p0+pe]
			for pp, v := range row {
				blk[pp*NR+j] = alpha * v
			}
		}
	}
}

// sliver returns the packed sliver of columns [j0, j0+NR) for the row block starting at p0.
func (pb *PackedB) sliver(p0, kc, j0 int) []float32 {
	base := p0*roundUp(pb.N, NR) + j0*kc
	return pb.Data[base : base+kc*NR]
}

// packA packs rows [i0, i0+mc) and columns [p0, p0+kc) of op(A) into MR-row slivers of
// MR x kcBlock floats (row i of a sliver at offset i·kcBlock), zero-filling missing rows.
func packA(dst []float32, a []float32, lda int, transA bool, i0, mc, p0, kc int) {
	for s := 0; s < mc; s += MR {
		out := dst[s*kcBlock : (s+MR)*kcBlock]
		h := min(MR, mc-s)
		for i := range h {
			o := out[i*kcBlock : i*kcBlock+kc]
			if !transA {
				copy(o, a[(i0+s+i)*lda+p0:])
				continue
			}
			col := i0 + s + i
			for p := range o {
				o[p] = a[(p0+p)*lda+col]
			}
		}
		for i := h; i < MR; i++ {
			clear(out[i*kcBlock : i*kcBlock+kc])
		}
	}
}

// scratch holds a packed A block plus one edge tile.
const scratchLen = mcBlock*kcBlock + MR*NR

var scratchPool = sync.Pool{New: func() any { s := make([]float32, scratchLen); return &s }}

// GemmPacked adds op(A)·B to C on the calling goroutine, for the m rows of op(A) and the
// columns of B's NR-slivers [jLo, jHi) (pass 0 and -1 for all). op(A) is m x b.K; C is m x b.N.
func GemmPacked(m int, a []float32, lda int, transA bool, b *PackedB, c []float32, ldc int, jLo, jHi int) {
	gemmPacked(m, a, lda, transA, b, c, ldc, jLo, jHi, true)
}

// GemmPackedSet is GemmPacked that overwrites C with op(A)·B (C need not be initialised).
func GemmPackedSet(m int, a []float32, lda int, transA bool, b *PackedB, c []float32, ldc int) {
	if b.K == 0 {
		for i := range m {
			clear(c[i*ldc : i*ldc+b.N])
		}
		return
	}
	gemmPacked(m, a, lda, transA, b, c, ldc, 0, -1, false)
}

func gemmPacked(m int, a []float32, lda int, transA bool, b *PackedB, c []float32, ldc int, jLo, jHi int, accumulate bool) {
	src := func(dst []float32, i0, mc, p0, kc int) { packA(dst, a, lda, transA, i0, mc, p0, kc) }
	gemmSource(m, src, b, c, ldc, jLo, jHi, accumulate)
}

// aSource fills packed A slivers (see packA) for rows [i0, i0+mc) and columns [p0, p0+kc)
// of an A operand that may never exist as a matrix (im2col packs straight from the image).
type aSource func(dst []float32, i0, mc, p0, kc int)

func gemmSource(m int, packA aSource, b *PackedB, c []float32, ldc int, jLo, jHi int, accumulate bool) {
	if m <= 0 || b.K == 0 {
		return
	}
	if jHi < 0 {
		jHi = roundUp(b.N, NR) / NR
	}
	sp := scratchPool.Get().(*[]float32)
	defer scratchPool.Put(sp)
	buf := *sp
	abuf := buf[:mcBlock*kcBlock]
	tile := buf[mcBlock*kcBlock:]
	k, n := b.K, b.N
	for p0 := 0; p0 < k; p0 += kcBlock {
		kc := min(kcBlock, k-p0)
		add := 1
		if p0 == 0 && !accumulate {
			add = 0
		}
		for i0 := 0; i0 < m; i0 += mcBlock {
			mc := min(mcBlock, m-i0)
			packA(abuf, i0, mc, p0, kc)
			for js := jLo; js < jHi; js++ {
				j0 := js * NR
				bs := b.sliver(p0, kc, j0)
				w := min(NR, n-j0)
				for s := 0; s < mc; s += MR {
					h := min(MR, mc-s)
					as := abuf[s*kcBlock:]
					if h == MR && w == NR {
						kernel(kc, &as[0], &bs[0], &c[(i0+s)*ldc+j0], ldc, add)
						continue
					}
					kernel(kc, &as[0], &bs[0], &tile[0], NR, 0)
					for i := range h {
						dst := c[(i0+s+i)*ldc+j0 : (i0+s+i)*ldc+j0+w]
						if add == 0 {
							copy(dst, tile[i*NR:])
							continue
						}
						for j := range dst {
							dst[j] += tile[i*NR+j]
						}
					}
				}
			}
		}
	}
}

// Gemm computes C = alpha*op(A)*op(B) + beta*C with op(A) m x k and op(B) k x n, all row-major
// with leading dimensions lda, ldb, ldc, on all workers.
func Gemm(transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	if m <= 0 || n <= 0 {
		return
	}
	if beta != 1 {
		for i := range m {
			row := c[i*ldc : i*ldc+n]
			if beta == 0 {
				clear(row)
			} else {
				for j := range row {
					row[j] *= beta
				}
			}
		}
	}
	if k <= 0 || alpha == 0 {
		return
	}
	var pb PackedB
	PackB(&pb, b, ldb, transB, k, n, alpha)
	GemmParallel(m, a, lda, transA, &pb, c, ldc)
}

// GemmParallel adds op(A)·B to C like GemmPacked, splitting rows (or, for short A, columns)
// over the workers.
func GemmParallel(m int, a []float32, lda int, transA bool, pb *PackedB, c []float32, ldc int) {
	slivers := (m + MR - 1) / MR
	cols := roundUp(pb.N, NR) / NR
	flops := 2 * m * pb.N * pb.K
	if flops < 1<<18 || parallel.Workers() == 1 {
		GemmPacked(m, a, lda, transA, pb, c, ldc, 0, -1)
		return
	}
	if slivers >= 2*parallel.Workers() || slivers >= cols {
		parallel.For(slivers, func(lo, hi, _ int) {
			i0, i1 := lo*MR, min(hi*MR, m)
			off := i0 * lda
			if transA {
				off = i0
			}
			GemmPacked(i1-i0, a[off:], lda, transA, pb, c[i0*ldc:], ldc, 0, -1)
		})
		return
	}
	parallel.For(cols, func(lo, hi, _ int) {
		GemmPacked(m, a, lda, transA, pb, c, ldc, lo, hi)
	})
}
