package kernels

import (
	"fmt"
	"sync"

	"move/internal/parallel"
)

// ConvGeom is the geometry of a 2-D convolution (dilation 1, groups 1) over an NHWC input
// x[N][H][W][C] with weights w[Cout][KH][KW][C], giving y[N][Ho][Wo][Cout].
//
// As a matrix product: y = col(x) · wᵀ, where col(x) has one row per output pixel and
// K = KH·KW·C columns (the receptive field, in w's order). Rows are processed in tasks of whole
// output image-rows so that each task builds its im2col block in cache.
type ConvGeom struct {
	N, H, W, C   int
	Cout, KH, KW int
	Stride, Pad  int
	Ho, Wo       int
}

// NewConvGeom returns the geometry for the given input, output channels, kernel, stride and
// padding, or an error when the output would be empty.
func NewConvGeom(n, h, w, c, cout, kh, kw, stride, pad int) (ConvGeom, error) {
	g := ConvGeom{N: n, H: h, W: w, C: c, Cout: cout, KH: kh, KW: kw, Stride: stride, Pad: pad}
	if stride < 1 || pad < 0 || kh < 1 || kw < 1 {
		return g, fmt.Errorf("convolution: bad kernel %dx%d stride %d pad %d", kh, kw, stride, pad)
	}
	g.Ho = (h+2*pad-kh)/stride + 1
	g.Wo = (w+2*pad-kw)/stride + 1
	if h+2*pad < kh || w+2*pad < kw || g.Ho < 1 || g.Wo < 1 {
		return g, fmt.Errorf("convolution: %dx%d kernel does not fit a %dx%d input with padding %d", kh, kw, h, w, pad)
	}
	return g, nil
}

// K is the length of one receptive field (a row of the im2col matrix).
func (g ConvGeom) K() int { return g.KH * g.KW * g.C }

// Rows is the number of output pixels, N·Ho·Wo.
func (g ConvGeom) Rows() int { return g.N * g.Ho * g.Wo }

// pointwise reports whether col(x) is x itself (1x1 kernel, stride 1, no padding).
func (g ConvGeom) pointwise() bool { return g.KH == 1 && g.KW == 1 && g.Stride == 1 && g.Pad == 0 }

// taskRows is the target number of output pixels in one task.
const taskRows = 8 * MR

// tasks splits the N·Ho output image-rows into tasks of t image-rows. t is large enough that
// the input footprints of tasks i and i+2 never overlap, so col2im can scatter all even tasks
// in parallel, then all odd ones.
func (g ConvGeom) tasks() (t, n int) {
	rows := g.N * g.Ho
	// Footprints of tasks i and i+2 are disjoint when t·stride > KH-1-stride.
	minT := max(1, (g.KH-1-g.Stride)/g.Stride+1)
	t = max(minT, (taskRows+g.Wo-1)/g.Wo)
	// Keep every worker busy on small inputs (batch 1).
	for t > minT && (rows+t-1)/t < 2*parallel.Workers() {
		t = max(minT, t/2)
	}
	return t, (rows + t - 1) / t
}

// span returns the output-pixel rows [r0, r1) of task i.
func (g ConvGeom) span(t, i int) (r0, r1 int) {
	rows := g.N * g.Ho
	return i * t * g.Wo, min((i+1)*t, rows) * g.Wo
}

// im2colRange writes columns [p0, p1) of output pixel r's receptive field (a row of col(x))
// into d[:p1-p0].
func (g ConvGeom) im2colRange(d, x []float32, r, p0, p1 int) {
	C := g.C
	hw := g.Ho * g.Wo
	b, rem := r/hw, r%hw
	oy, ox := rem/g.Wo, rem%g.Wo
	ix0 := ox*g.Stride - g.Pad
	dataLo, dataHi := max(0, -ix0)*C, min(g.KW, g.W-ix0)*C
	seg := g.KW * C
	for ky := p0 / seg; ky < g.KH && ky*seg < p1; ky++ {
		lo, hi := max(p0, ky*seg), min(p1, (ky+1)*seg)
		dd := d[lo-p0 : hi-p0]
		iy := oy*g.Stride - g.Pad + ky
		if iy < 0 || iy >= g.H || dataLo >= dataHi {
			clear(dd)
			continue
		}
		a, e := lo-ky*seg, hi-ky*seg // offsets within this kernel row
		if z := min(e, dataLo); a < z {
			clear(dd[:z-a])
		}
		if cs, ce := max(a, dataLo), min(e, dataHi); cs < ce {
			src := ((b*g.H+iy)*g.W+ix0)*C + cs
			copy(dd[cs-a:ce-a], x[src:src+ce-cs])
		}
		if zs := max(a, dataHi); zs < e {
			clear(dd[zs-a:])
		}
	}
}

// im2colSource packs A slivers of col(x) for output pixels starting at r0, straight from x.
func (g ConvGeom) im2colSource(x []float32, r0 int) aSource {
	return func(dst []float32, i0, mc, p0, kc int) {
		full := p0 == 0 && kc == g.K()
		for s := 0; s < mc; s += MR {
			out := dst[s*kcBlock : (s+MR)*kcBlock]
			h := min(MR, mc-s)
			if full {
				g.im2colRows(out, kcBlock, x, r0+i0+s, r0+i0+s+h)
			} else {
				for i := range h {
					g.im2colRange(out[i*kcBlock:i*kcBlock+kc], x, r0+i0+s+i, p0, p0+kc)
				}
			}
			for i := h; i < MR; i++ {
				clear(out[i*kcBlock : i*kcBlock+kc])
			}
		}
	}
}

// im2colRows writes whole rows [r0, r1) of col(x) into dst at a row stride of ld, walking
// the output pixels incrementally.
func (g ConvGeom) im2colRows(dst []float32, ld int, x []float32, r0, r1 int) {
	C := g.C
	seg := g.KW * C
	hw := g.Ho * g.Wo
	b, rem := r0/hw, r0%hw
	oy, ox := rem/g.Wo, rem%g.Wo
	for r := r0; r < r1; r++ {
		d := dst[(r-r0)*ld : (r-r0)*ld+g.K()]
		ix0 := ox*g.Stride - g.Pad
		dataLo, dataHi := max(0, -ix0)*C, min(g.KW, g.W-ix0)*C
		rowBase := (b*g.H)*g.W*C + ix0*C
		for ky := range g.KH {
			dd := d[ky*seg : (ky+1)*seg]
			iy := oy*g.Stride - g.Pad + ky
			if iy < 0 || iy >= g.H || dataLo >= dataHi {
				clear(dd)
				continue
			}
			clear(dd[:dataLo])
			src := rowBase + iy*g.W*C
			copy(dd[dataLo:dataHi], x[src+dataLo:src+dataHi])
			clear(dd[dataHi:])
		}
		if ox++; ox == g.Wo {
			ox = 0
			if oy++; oy == g.Ho {
				oy = 0
				b++
			}
		}
	}
}

// col2imAdd adds rows [r0, r1) of a column-gradient block src into dx, the inverse scatter of im2col.
func (g ConvGeom) col2imAdd(dx, src []float32, r0, r1 int) {
	K, C := g.K(), g.C
	hw := g.Ho * g.Wo
	for r := r0; r < r1; r++ {
		b, rem := r/hw, r%hw
		oy, ox := rem/g.Wo, rem%g.Wo
		s := src[(r-r0)*K : (r-r0+1)*K]
		ix0 := ox*g.Stride - g.Pad
		kxLo, kxHi := max(0, -ix0), min(g.KW, g.W-ix0)
		if kxLo >= kxHi {
			continue
		}
		for ky := range g.KH {
			iy := oy*g.Stride - g.Pad + ky
			if iy < 0 || iy >= g.H {
				continue
			}
			seg := s[(ky*g.KW+kxLo)*C : (ky*g.KW+kxHi)*C]
			AddTo(dx[((b*g.H+iy)*g.W+ix0+kxLo)*C:][:len(seg)], seg)
		}
	}
}

var bufPool sync.Pool

func getBuf(n int) *[]float32 {
	if p, ok := bufPool.Get().(*[]float32); ok && cap(*p) >= n {
		*p = (*p)[:n]
		return p
	}
	s := make([]float32, n)
	return &s
}

func putBuf(p *[]float32) { bufPool.Put(p) }

// ConvForward writes y = conv(x, w).
func ConvForward(g ConvGeom, x, w, y []float32) { ConvForwardAffine(g, x, w, y, nil, nil, false) }

// ConvForwardAffine writes y = conv(x, w)·scale + shift per output channel, then max(y, 0)
// when relu, applying the affine map to each block of rows while it is still in cache
// (a convolution followed by an inference-mode batch norm). nil scale means no affine map.
func ConvForwardAffine(g ConvGeom, x, w, y, scale, shift []float32, relu bool) {
	convForward(g, x, w, y, scale, shift, nil, relu, false)
}

// ConvForwardAffineAdd is ConvForwardAffine with a residual added before the ReLU:
// y = relu(conv(x, w)·scale + shift + res) (the end of a post-activation residual block).
func ConvForwardAffineAdd(g ConvGeom, x, w, y, scale, shift, res []float32) {
	convForward(g, x, w, y, scale, shift, res, true, false)
}

// convForward is ConvForwardAffine that adds into y instead when accumulate (without affine).
func convForward(g ConvGeom, x, w, y, scale, shift, res []float32, relu, accumulate bool) {
	K := g.K()
	buf := getBuf(K * roundUp(g.Cout, NR))
	defer putBuf(buf)
	pb := PackedB{Data: *buf}
	PackB(&pb, w, K, true, K, g.Cout, 1)
	convForwardPacked(g, x, &pb, y, scale, shift, res, relu, accumulate)
}

// convForwardPacked is convForward with the weights packed (PackB of w read transposed).
func convForwardPacked(g ConvGeom, x []float32, pb *PackedB, y, scale, shift, res []float32, relu, accumulate bool) {
	t, n := g.tasks()
	kern, direct := g.direct()
	parallel.For(n, func(lo, hi, _ int) {
		var band *[]float32
		if direct {
			band = getBuf(0)
			defer putBuf(band)
		}
		for i := lo; i < hi; i++ {
			r0, r1 := g.span(t, i)
			out := y[r0*g.Cout : r1*g.Cout]
			if direct {
				g.directRows(kern, x, pb, out, r0, r1, accumulate, band)
			} else if g.pointwise() {
				gemmPacked(r1-r0, x[r0*g.C:r1*g.C], g.C, false, pb, out, g.Cout, 0, -1, accumulate)
			} else {
				gemmSource(r1-r0, g.im2colSource(x, r0), pb, out, g.Cout, 0, -1, accumulate)
			}
			switch {
			case scale != nil && res != nil:
				ChannelAffine(out, out, scale, shift, g.Cout, false)
				Add3(out, out, res[r0*g.Cout:r1*g.Cout], relu)
			case scale != nil:
				ChannelAffine(out, out, scale, shift, g.Cout, relu)
			}
		}
	})
}

// ConvBackwardData computes the input gradient dx of a convolution from dy, adding to dx
// when accumulate and overwriting it otherwise. A stride-1 convolution's input gradient is a
// convolution of dy with the flipped, transposed kernel, computed as such (no scatter); other
// strides scatter col2im blocks.
func ConvBackwardData(g ConvGeom, w, dy, dx []float32, accumulate bool) {
	if g.Stride == 1 && g.KH == g.KW && g.Pad <= g.KH-1 {
		k := g.KH
		gt, err := NewConvGeom(g.N, g.Ho, g.Wo, g.Cout, g.C, k, k, 1, k-1-g.Pad)
		if err == nil && gt.Ho == g.H && gt.Wo == g.W {
			buf := getBuf(gt.K() * roundUp(g.C, NR))
			defer putBuf(buf)
			pb := PackedB{Data: *buf}
			packFlipped(&pb, w, k, g.Cout, g.C)
			convForwardPacked(gt, dy, &pb, dx, nil, nil, nil, false, accumulate)
			return
		}
	}
	if !accumulate {
		n := g.N * g.H * g.W * g.C
		parallel.For(n, func(lo, hi, _ int) { clear(dx[lo:hi]) })
	}
	ConvBackward(g, nil, w, dy, dx, nil)
}

// packFlipped packs, as PackB(dst, wt, K, true, K, c, 1) would with K = k·k·cout, the
// flipped, transposed kernel wt[ci][ky][kx][co] = w[co][k-1-ky][k-1-kx][ci] of a stride-1
// input gradient, reading w directly: a packed row (ky, kx, co) of NR input channels is NR
// consecutive values of w.
func packFlipped(dst *PackedB, w []float32, k, cout, c int) {
	dst.pack(k*k*cout, c, func(out []float32, p0, kc, j0, wd int) {
		for p := range kc {
			q := p0 + p
			ky, kx, co := q/(k*cout), q/cout%k, q%cout
			o := out[p*NR : p*NR+NR]
			copy(o, w[((co*k+(k-1-ky))*k+(k-1-kx))*c+j0:][:wd])
			clear(o[wd:])
		}
	})
}

// ConvBackwardWeight adds the weight gradient dyᵀ·col(x) of a convolution to dw.
func ConvBackwardWeight(g ConvGeom, x, dy, dw []float32) { ConvBackward(g, x, nil, dy, nil, dw) }

// ConvBackwardWeightEach accumulates each example's weight gradient separately:
// dw[n] += dy[n]ᵀ·col(x[n]) for the N examples, dw holding N gradients of Cout·K values
// (per-example gradients). The examples are shared among the workers; each builds one
// example's im2col block (or runs the direct kernel) and writes its gradient without
// partial sums.
func ConvBackwardWeightEach(g ConvGeom, x, dy, dw []float32) {
	K, pix := g.K(), g.Ho*g.Wo
	size := g.Cout * K
	if len(dw) < g.N*size {
		panic(fmt.Sprintf("kernels.ConvBackwardWeightEach: %d values for %d gradients of %d", len(dw), g.N, size))
	}
	kern, direct := g.directWeight()
	parallel.For(g.N, func(lo, hi, _ int) {
		if direct {
			ws := g.newDirectWeightScratch()
			defer ws.free()
			acc := getBuf(g.KH * g.KW * g.C * g.Cout)
			defer putBuf(acc)
			for b := lo; b < hi; b++ {
				clear(*acc)
				g.weightGradDirectImage(kern, x, dy, b, *acc, ws)
				g.addTransposedWeight(dw[b*size:(b+1)*size], *acc)
			}
			return
		}
		var colBuf *[]float32
		if !g.pointwise() {
			colBuf = getBuf(pix * K)
			defer putBuf(colBuf)
		}
		var pcol PackedB
		for b := lo; b < hi; b++ {
			r0, r1 := b*pix, (b+1)*pix
			col := x[r0*g.C : r1*g.C]
			if !g.pointwise() {
				g.im2colRows(*colBuf, K, x, r0, r1)
				col = *colBuf
			}
			PackB(&pcol, col, K, false, pix, K, 1)
			GemmPacked(g.Cout, dy[r0*g.Cout:r1*g.Cout], g.Cout, true, &pcol, dw[b*size:(b+1)*size], K, 0, -1)
		}
	})
}

// ConvBackward accumulates the gradients of a convolution given dy, the gradient of its output:
// dx += col2im(dy · w) when dx is not nil, and dw += dyᵀ · col(x) when dw is not nil.
// The weight gradient is reduced from one partial sum per worker, in worker order, so the
// result is deterministic for a given number of workers.
func ConvBackward(g ConvGeom, x, w, dy, dx, dw []float32) {
	if dx == nil && dw == nil {
		return
	}
	if dw != nil {
		if kern, ok := g.directWeight(); ok {
			g.weightGradDirect(kern, x, dy, dw)
			dw = nil
			if dx == nil {
				return
			}
		}
	}
	K := g.K()
	var pw PackedB
	if dx != nil {
		PackB(&pw, w, K, false, g.Cout, K, 1)
	}
	nw := parallel.Workers()
	var partial [][]float32
	if dw != nil {
		partial = make([][]float32, nw)
	}
	t, n := g.tasks()
	phases := 2
	if dx == nil || g.pointwise() {
		phases = 1
	}
	for ph := range phases {
		count := (n - ph + phases - 1) / phases
		parallel.For(count, func(lo, hi, worker int) {
			var colBuf, dcolBuf *[]float32
			if dw != nil && !g.pointwise() {
				colBuf = getBuf(t * g.Wo * K)
				defer putBuf(colBuf)
			}
			var pcol PackedB
			if dw != nil && partial[worker] == nil {
				partial[worker] = make([]float32, g.Cout*K)
			}
			for j := lo; j < hi; j++ {
				r0, r1 := g.span(t, j*phases+ph)
				rows := r1 - r0
				dyc := dy[r0*g.Cout : r1*g.Cout]
				if dx != nil {
					if g.pointwise() {
						GemmPacked(rows, dyc, g.Cout, false, &pw, dx[r0*g.C:r1*g.C], g.C, 0, -1)
					} else {
						if dcolBuf == nil {
							dcolBuf = getBuf(t * g.Wo * K)
							defer putBuf(dcolBuf)
						}
						dcol := (*dcolBuf)[:rows*K]
						GemmPackedSet(rows, dyc, g.Cout, false, &pw, dcol, K)
						g.col2imAdd(dx, dcol, r0, r1)
					}
				}
				if dw != nil {
					// dw += dyᵀ·col: the transposed operand is the small one.
					col := x[r0*g.C : r1*g.C]
					if !g.pointwise() {
						g.im2colRows(*colBuf, K, x, r0, r1)
						col = (*colBuf)[:rows*K]
					}
					PackB(&pcol, col, K, false, rows, K, 1)
					GemmPacked(g.Cout, dyc, g.Cout, true, &pcol, partial[worker], K, 0, -1)
				}
			}
		})
	}
	if dw == nil {
		return
	}
	for _, p := range partial {
		if p != nil {
			AddTo(dw, p)
		}
	}
}
