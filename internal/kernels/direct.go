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
// micro-kernel reads each tile's receptive fields straight from zero-padded copies of the
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

// directRows computes output pixels [r0, r1) (whole output rows) of y = conv(x, w) into out
// (adding when accumulate) with the packed weights pb. For each image the rows touch, the
// input rows they read are first copied, zero-padded, into band (a buffer the caller owns),
// so the kernel reads a small padded block while it is in cache.
func (g ConvGeom) directRows(kern stridedKernel, x []float32, pb *PackedB, out []float32, r0, r1 int, accumulate bool, band *[]float32) {
	wp := g.W + 2*g.Pad
	C, S := g.C, g.Stride
	seg := g.KW * C // one kernel row: contiguous in a padded input row
	lda := S * C
	for r := r0; r < r1; {
		b, oy := r/(g.Ho*g.Wo), r%(g.Ho*g.Wo)/g.Wo
		oyEnd := min(g.Ho, oy+(r1-r)/g.Wo)
		py0, py1 := oy*S, (oyEnd-1)*S+g.KH // padded input rows read
		n := (py1 - py0) * wp * C
		if cap(*band) < n {
			*band = make([]float32, n)
		}
		xp := (*band)[:n]
		for py := py0; py < py1; py++ {
			row := xp[(py-py0)*wp*C : (py-py0+1)*wp*C]
			iy := py - g.Pad
			if iy < 0 || iy >= g.H {
				clear(row)
				continue
			}
			clear(row[:g.Pad*C])
			copy(row[g.Pad*C:(g.Pad+g.W)*C], x[(b*g.H+iy)*g.W*C:(b*g.H+iy+1)*g.W*C])
			clear(row[(g.Pad+g.W)*C:])
		}
		for ; oy < oyEnd; oy++ {
			for ox := 0; ox < g.Wo; ox += MR {
				c := out[(r-r0)*g.Cout:]
				for j0 := 0; j0 < g.Cout; j0 += NR {
					bs := pb.sliver(0, g.K(), j0)
					for ky := range g.KH {
						a := ((oy*S+ky-py0)*wp + ox*S) * C
						add := 1
						if ky == 0 && !accumulate {
							add = 0
						}
						kern(seg, &xp[a], lda, &bs[ky*seg*NR], &c[j0], g.Cout, add)
					}
				}
				r += MR
			}
		}
	}
}

// directWeight reports whether the weight gradient runs directly: for each kernel tap, a tile
// of 16 input by 16 output channels accumulates Σ_pixels x(pixel + tap)·dy(pixel) with the
// strided micro-kernel reading the image channel by channel from a padded, transposed copy
// ([C][H+2p][W+2p] per image) and dy from 16-channel slivers laid out on the same padded grid
// (zeros in the padding columns), so that one call sweeps a whole image: step oy·(W+2p)+ox
// pairs output pixel (oy, ox) with input pixel (oy+ky, ox+kx). No im2col block is built. It
// needs stride 1 and channel counts that are multiples of 16.
func (g ConvGeom) directWeight() (stridedKernel, bool) {
	k, ok := stridedKernels()[kernelName]
	if !ok || kernelName == "go" && !forceDirect {
		return nil, false
	}
	return k, !g.pointwise() && g.Stride == 1 && g.C%MR == 0 && g.Cout%NR == 0
}

// weightGradDirect adds the weight gradient of the convolution to dw.
func (g ConvGeom) weightGradDirect(kern stridedKernel, x, dy, dw []float32) {
	taps := g.KH * g.KW
	nw := parallel.Workers()
	partial := make([][]float32, nw) // [tap][ci][co]
	parallel.For(g.N, func(lo, hi, worker int) {
		acc := partial[worker]
		if acc == nil {
			acc = make([]float32, taps*g.C*g.Cout)
			partial[worker] = acc
		}
		ws := g.newDirectWeightScratch()
		defer ws.free()
		for b := lo; b < hi; b++ {
			g.weightGradDirectImage(kern, x, dy, b, acc, ws)
		}
	})
	for _, acc := range partial {
		if acc != nil {
			g.addTransposedWeight(dw, acc)
		}
	}
}

// directWeightScratch is one worker's buffers for weightGradDirectImage.
type directWeightScratch struct{ xt, ds *[]float32 }

func (g ConvGeom) newDirectWeightScratch() directWeightScratch {
	hp, wp := g.H+2*g.Pad, g.W+2*g.Pad
	return directWeightScratch{xt: getBuf(g.C * hp * wp), ds: getBuf(g.Ho * wp * g.Cout)}
}

func (s directWeightScratch) free() { putBuf(s.xt); putBuf(s.ds) }

// weightGradDirectImage adds image b's weight gradient to acc, laid out [tap][ci][co].
func (g ConvGeom) weightGradDirectImage(kern stridedKernel, x, dy []float32, b int, acc []float32, ws directWeightScratch) {
	hp, wp := g.H+2*g.Pad, g.W+2*g.Pad
	C, Co := g.C, g.Cout
	grid := g.Ho * wp // dy on the padded grid: Ho rows of W+2p pixels
	xt, ds := *ws.xt, *ws.ds
	pix := g.Ho * g.Wo
	steps := (g.Ho-1)*wp + g.Wo
	// xt[ci][y][x]: the image, transposed and zero-padded.
	clear(xt)
	img := x[b*g.H*g.W*C : (b+1)*g.H*g.W*C]
	for y := range g.H {
		for xx := range g.W {
			src := img[(y*g.W+xx)*C : (y*g.W+xx+1)*C]
			o := (y+g.Pad)*wp + xx + g.Pad
			for ci, v := range src {
				xt[ci*hp*wp+o] = v
			}
		}
	}
	// ds[s][oy][x][16]: dy in slivers of 16 output channels on the padded grid.
	d := dy[b*pix*Co : (b+1)*pix*Co]
	for s := 0; s < Co/NR; s++ {
		for oy := range g.Ho {
			row := ds[(s*grid+oy*wp)*NR : (s*grid+(oy+1)*wp)*NR]
			gatherRows16(row, d[oy*g.Wo*Co+s*NR:], g.Wo, Co)
			clear(row[g.Wo*NR:])
		}
	}
	for ky := range g.KH {
		for kx := range g.KW {
			tap := ky*g.KW + kx
			for ci0 := 0; ci0 < C; ci0 += MR {
				a := &xt[(ci0*hp+ky)*wp+kx]
				for s := 0; s < Co/NR; s++ {
					kern(steps, a, hp*wp, &ds[s*grid*NR], &acc[(tap*C+ci0)*Co+s*NR], Co, 1)
				}
			}
		}
	}
}

// addTransposedWeight adds acc[tap][ci][co] to dw[co][tap][ci], in 16x16 tiles of (ci, co)
// so that both sides stay in cache.
func (g ConvGeom) addTransposedWeight(dw, acc []float32) {
	taps, C, Co := g.KH*g.KW, g.C, g.Cout
	const tile = 16
	for tap := range taps {
		for c0 := 0; c0 < C; c0 += tile {
			for o0 := 0; o0 < Co; o0 += tile {
				for co := o0; co < min(Co, o0+tile); co++ {
					d := dw[(co*taps+tap)*C:]
					for ci := c0; ci < min(C, c0+tile); ci++ {
						d[ci] += acc[(tap*C+ci)*Co+co]
					}
				}
			}
		}
	}
}

// gatherRows16 copies n rows of 16 floats, src rows stride floats apart, into dst.
func gatherRows16(dst, src []float32, n, stride int) {
	if n == 0 {
		return
	}
	_ = src[(n-1)*stride+NR-1]
	_ = dst[n*NR-1]
	if useVecAsm() {
		gatherRows16AVX512(&dst[0], &src[0], n, stride)
		return
	}
	for i := range n {
		copy(dst[i*NR:(i+1)*NR], src[i*stride:i*stride+NR])
	}
}
