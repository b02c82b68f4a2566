package nn

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"move/internal/tensor"
)

// opCase is one operation under test: build applies it through the engine (float32);
// ref computes the same function by definition in float64.
type opCase struct {
	name   string
	shapes [][]int
	build  func(tp *Tape, in []*Var) *Var
	ref    func(in [][]float64) []float64
	// positive makes inputs strictly positive (for probabilities).
	positive []bool
}

func randTensor(r *rand.Rand, shape []int, positive bool) *tensor.Tensor {
	t := tensor.New(shape...)
	for i := range t.Data {
		if positive {
			t.Data[i] = 0.1 + r.Float32()
		} else {
			t.Data[i] = float32(r.NormFloat64())
		}
	}
	return t
}

// checkOp compares the forward values with the float64 reference, and the gradients of
// L = Σ out·R with central finite differences of the reference in float64.
func checkOp(t *testing.T, c opCase) {
	t.Helper()
	r := rand.New(rand.NewPCG(11, uint64(len(c.name))))
	ins := make([]*tensor.Tensor, len(c.shapes))
	vars := make([]*Var, len(c.shapes))
	ref := make([][]float64, len(c.shapes))
	for i, s := range c.shapes {
		pos := i < len(c.positive) && c.positive[i]
		ins[i] = randTensor(r, s, pos)
		vars[i] = Leaf(ins[i])
		ref[i] = make([]float64, ins[i].Len())
		for j, v := range ins[i].Data {
			ref[i][j] = float64(v)
		}
	}
	tp := NewTape(true)
	y := c.build(tp, vars)
	want := c.ref(ref)
	if len(want) != y.Value.Len() {
		t.Fatalf("reference has %d outputs, engine %d", len(want), y.Value.Len())
	}
	for i, w := range want {
		if d := math.Abs(float64(y.Data()[i]) - w); d > 1e-4*(1+math.Abs(w)) {
			t.Fatalf("forward[%d] = %g, reference %g", i, y.Data()[i], w)
		}
	}
	seed := make([]float64, len(want))
	y.Grad = tensor.New(y.Shape()...)
	for i := range seed {
		seed[i] = r.NormFloat64()
		y.Grad.Data[i] = float32(seed[i])
	}
	for i := len(tp.steps) - 1; i >= 0; i-- {
		tp.steps[i]()
	}
	loss := func() float64 {
		out := c.ref(ref)
		var s float64
		for i, v := range out {
			s += v * seed[i]
		}
		return s
	}
	const h = 1e-6
	for i := range ref {
		idx := r.Perm(len(ref[i]))
		if len(idx) > 60 {
			idx = idx[:60]
		}
		num := make([]float64, len(idx))
		var scale float64
		for k, j := range idx {
			orig := ref[i][j]
			ref[i][j] = orig + h
			lp := loss()
			ref[i][j] = orig - h
			lm := loss()
			ref[i][j] = orig
			num[k] = (lp - lm) / (2 * h)
			scale = max(scale, math.Abs(num[k]))
		}
		for k, j := range idx {
			got := float64(vars[i].Grad.Data[j])
			if d := math.Abs(got - num[k]); d > 1e-3*math.Abs(num[k])+1e-4*scale+1e-6 {
				t.Errorf("input %d element %d: gradient %g, finite difference %g", i, j, got, num[k])
			}
		}
	}
}

// Float64 references, by definition.

func refConv(x, w []float64, n, h, wd, c, co, kh, kw, s, p int) []float64 {
	ho, wo := (h+2*p-kh)/s+1, (wd+2*p-kw)/s+1
	y := make([]float64, n*ho*wo*co)
	for b := range n {
		for oy := range ho {
			for ox := range wo {
				for o := range co {
					var acc float64
					for ky := range kh {
						for kx := range kw {
							iy, ix := oy*s-p+ky, ox*s-p+kx
							if iy < 0 || iy >= h || ix < 0 || ix >= wd {
								continue
							}
							for ci := range c {
								acc += x[((b*h+iy)*wd+ix)*c+ci] * w[((o*kh+ky)*kw+kx)*c+ci]
							}
						}
					}
					y[((b*ho+oy)*wo+ox)*co+o] = acc
				}
			}
		}
	}
	return y
}

func refConvT(x, w []float64, n, h, wd, ci, co, k, s, p, op int) []float64 {
	ho, wo := (h-1)*s-2*p+k+op, (wd-1)*s-2*p+k+op
	y := make([]float64, n*ho*wo*co)
	for b := range n {
		for iy := range h {
			for ix := range wd {
				for i := range ci {
					xv := x[((b*h+iy)*wd+ix)*ci+i]
					for ky := range k {
						for kx := range k {
							oy, ox := iy*s-p+ky, ix*s-p+kx
							if oy < 0 || oy >= ho || ox < 0 || ox >= wo {
								continue
							}
							for o := range co {
								y[((b*ho+oy)*wo+ox)*co+o] += xv * w[((i*k+ky)*k+kx)*co+o]
							}
						}
					}
				}
			}
		}
	}
	return y
}

func refLogSoftmax(x []float64, k int) []float64 {
	out := make([]float64, len(x))
	for r := 0; r < len(x)/k; r++ {
		m := math.Inf(-1)
		for _, v := range x[r*k : (r+1)*k] {
			m = max(m, v)
		}
		var s float64
		for _, v := range x[r*k : (r+1)*k] {
			s += math.Exp(v - m)
		}
		for j := range k {
			out[r*k+j] = x[r*k+j] - m - math.Log(s)
		}
	}
	return out
}

func elementwise(f func(float64) float64) func(in [][]float64) []float64 {
	return func(in [][]float64) []float64 {
		out := make([]float64, len(in[0]))
		for i, v := range in[0] {
			out[i] = f(v)
		}
		return out
	}
}

func refBN(x, g, b []float64, c int, train bool, rm, rv []float64) []float64 {
	rows := len(x) / c
	out := make([]float64, len(x))
	for j := range c {
		var mean, vr float64
		if !train {
			mean, vr = rm[j], rv[j]
		} else {
			mean, vr = 0, 0
			for r := range rows {
				mean += x[r*c+j]
			}
			mean /= float64(rows)
			for r := range rows {
				vr += (x[r*c+j] - mean) * (x[r*c+j] - mean)
			}
			vr /= float64(rows)
		}
		for r := range rows {
			out[r*c+j] = g[j]*(x[r*c+j]-mean)/math.Sqrt(vr+1e-5) + b[j]
		}
	}
	return out
}

func newBN(c int, r *rand.Rand) *BatchNorm {
	bn := &BatchNorm{Mean: tensor.New(c), Var: tensor.New(c), Momentum: 0.1, Eps: 1e-5}
	for j := range c {
		bn.Mean.Data[j] = float32(r.NormFloat64())
		bn.Var.Data[j] = 0.5 + r.Float32()
	}
	return bn
}

func TestGradients(t *testing.T) {
	labels := []int{2, 0, 4}
	r := rand.New(rand.NewPCG(7, 7))
	bnEval := newBN(5, r)
	rm := make([]float64, 5)
	rv := make([]float64, 5)
	for j := range 5 {
		rm[j], rv[j] = float64(bnEval.Mean.Data[j]), float64(bnEval.Var.Data[j])
	}
	target := randTensor(r, []int{3, 5}, true)
	for i := range 3 { // normalise rows to probabilities
		var s float32
		for j := range 5 {
			s += target.Data[i*5+j]
		}
		for j := range 5 {
			target.Data[i*5+j] /= s
		}
	}
	t64 := make([]float64, len(target.Data))
	for i, v := range target.Data {
		t64[i] = float64(v)
	}
	cases := []opCase{
		{name: "conv3x3", shapes: [][]int{{2, 6, 5, 3}, {4, 3, 3, 3}, {4}},
			build: func(tp *Tape, in []*Var) *Var { return Conv2D(tp, in[0], in[1], in[2], 1, 1) },
			ref: func(in [][]float64) []float64 {
				y := refConv(in[0], in[1], 2, 6, 5, 3, 4, 3, 3, 1, 1)
				for i := range y {
					y[i] += in[2][i%4]
				}
				return y
			}},
		{name: "conv3x3s2", shapes: [][]int{{2, 7, 7, 2}, {3, 3, 3, 2}},
			build: func(tp *Tape, in []*Var) *Var { return Conv2D(tp, in[0], in[1], nil, 2, 1) },
			ref:   func(in [][]float64) []float64 { return refConv(in[0], in[1], 2, 7, 7, 2, 3, 3, 3, 2, 1) }},
		{name: "conv1x1s2", shapes: [][]int{{2, 6, 6, 4}, {3, 1, 1, 4}},
			build: func(tp *Tape, in []*Var) *Var { return Conv2D(tp, in[0], in[1], nil, 2, 0) },
			ref:   func(in [][]float64) []float64 { return refConv(in[0], in[1], 2, 6, 6, 4, 3, 1, 1, 2, 0) }},
		{name: "conv5x5", shapes: [][]int{{1, 7, 6, 2}, {2, 5, 5, 2}},
			build: func(tp *Tape, in []*Var) *Var { return Conv2D(tp, in[0], in[1], nil, 1, 2) },
			ref:   func(in [][]float64) []float64 { return refConv(in[0], in[1], 1, 7, 6, 2, 2, 5, 5, 1, 2) }},
		{name: "convT4x4s2", shapes: [][]int{{2, 3, 3, 3}, {3, 4, 4, 2}, {2}},
			build: func(tp *Tape, in []*Var) *Var { return ConvTranspose2D(tp, in[0], in[1], in[2], 2, 1, 0) },
			ref: func(in [][]float64) []float64 {
				y := refConvT(in[0], in[1], 2, 3, 3, 3, 2, 4, 2, 1, 0)
				for i := range y {
					y[i] += in[2][i%2]
				}
				return y
			}},
		{name: "convT3x3s2op1", shapes: [][]int{{1, 3, 4, 2}, {2, 3, 3, 3}},
			build: func(tp *Tape, in []*Var) *Var { return ConvTranspose2D(tp, in[0], in[1], nil, 2, 1, 1) },
			ref:   func(in [][]float64) []float64 { return refConvT(in[0], in[1], 1, 3, 4, 2, 3, 3, 2, 1, 1) }},
		{name: "batchnorm-train", shapes: [][]int{{3, 2, 2, 5}, {5}, {5}},
			build: func(tp *Tape, in []*Var) *Var {
				bn := newBN(5, rand.New(rand.NewPCG(1, 1)))
				bn.Gamma, bn.Beta = in[1], in[2]
				return BatchNormOp(tp, in[0], bn, true)
			},
			ref: func(in [][]float64) []float64 { return refBN(in[0], in[1], in[2], 5, true, nil, nil) }},
		{name: "batchnorm-eval", shapes: [][]int{{3, 2, 2, 5}, {5}, {5}},
			build: func(tp *Tape, in []*Var) *Var {
				bn := *bnEval
				bn.Gamma, bn.Beta = in[1], in[2]
				return BatchNormOp(tp, in[0], &bn, false)
			},
			ref: func(in [][]float64) []float64 { return refBN(in[0], in[1], in[2], 5, false, rm, rv) }},
		{name: "batchnorm-relu-train", shapes: [][]int{{3, 2, 2, 5}, {5}, {5}},
			build: func(tp *Tape, in []*Var) *Var {
				bn := newBN(5, rand.New(rand.NewPCG(1, 1)))
				bn.Gamma, bn.Beta = in[1], in[2]
				return BatchNormReLU(tp, in[0], bn, true)
			},
			ref: func(in [][]float64) []float64 {
				y := refBN(in[0], in[1], in[2], 5, true, nil, nil)
				for i := range y {
					y[i] = max(0, y[i])
				}
				return y
			}},
		{name: "batchnorm-relu-train-16ch", shapes: [][]int{{2, 3, 2, 16}, {16}, {16}},
			build: func(tp *Tape, in []*Var) *Var {
				bn := newBN(16, rand.New(rand.NewPCG(1, 1)))
				bn.Gamma, bn.Beta = in[1], in[2]
				return BatchNormReLU(tp, in[0], bn, true)
			},
			ref: func(in [][]float64) []float64 {
				y := refBN(in[0], in[1], in[2], 16, true, nil, nil)
				for i := range y {
					y[i] = max(0, y[i])
				}
				return y
			}},
		{name: "batchnorm-relu-eval", shapes: [][]int{{3, 2, 2, 5}, {5}, {5}},
			build: func(tp *Tape, in []*Var) *Var {
				bn := *bnEval
				bn.Gamma, bn.Beta = in[1], in[2]
				return BatchNormReLU(tp, in[0], &bn, false)
			},
			ref: func(in [][]float64) []float64 {
				y := refBN(in[0], in[1], in[2], 5, false, rm, rv)
				for i := range y {
					y[i] = max(0, y[i])
				}
				return y
			}},
		// A residual chain whose intermediate gradients take the fresh-buffer, aliasing and
		// accumulating paths of the ops.
		{name: "residual-chain", shapes: [][]int{{2, 5, 5, 3}, {4, 3, 3, 3}, {4, 3, 3, 4}, {4}, {4}, {3, 4}},
			build: func(tp *Tape, in []*Var) *Var {
				bn := newBN(4, rand.New(rand.NewPCG(1, 1)))
				bn.Gamma, bn.Beta = in[3], in[4]
				h1 := ReLU(tp, Conv2D(tp, in[0], in[1], nil, 1, 1))
				h3 := BatchNormReLU(tp, Conv2D(tp, h1, in[2], nil, 1, 1), bn, true)
				h4 := Add(tp, h3, h1)
				return Linear(tp, Reshape(tp, GlobalAvgPool(tp, h4), 2, 4), in[5], nil)
			},
			ref: func(in [][]float64) []float64 {
				h1 := refConv(in[0], in[1], 2, 5, 5, 3, 4, 3, 3, 1, 1)
				for i := range h1 {
					h1[i] = max(0, h1[i])
				}
				h3 := refBN(refConv(h1, in[2], 2, 5, 5, 4, 4, 3, 3, 1, 1), in[3], in[4], 4, true, nil, nil)
				g := make([]float64, 8)
				for i := range h3 {
					g[(i/100)*4+i%4] += (max(0, h3[i]) + h1[i]) / 25
				}
				out := make([]float64, 6)
				for b := range 2 {
					for o := range 3 {
						for k := range 4 {
							out[b*3+o] += g[b*4+k] * in[5][o*4+k]
						}
					}
				}
				return out
			}},
		{name: "relu", shapes: [][]int{{4, 9}},
			build: func(tp *Tape, in []*Var) *Var { return ReLU(tp, in[0]) },
			ref:   elementwise(func(v float64) float64 { return max(v, 0) })},
		{name: "leakyrelu", shapes: [][]int{{4, 9}},
			build: func(tp *Tape, in []*Var) *Var { return LeakyReLU(tp, in[0], 0.2) },
			ref: elementwise(func(v float64) float64 {
				if v > 0 {
					return v
				}
				return 0.2 * v
			})},
		{name: "tanh", shapes: [][]int{{4, 9}},
			build: func(tp *Tape, in []*Var) *Var { return Tanh(tp, in[0]) },
			ref:   elementwise(math.Tanh)},
		{name: "sigmoid", shapes: [][]int{{4, 9}},
			build: func(tp *Tape, in []*Var) *Var { return Sigmoid(tp, in[0]) },
			ref:   elementwise(func(v float64) float64 { return 1 / (1 + math.Exp(-v)) })},
		{name: "maxpool3s2p1", shapes: [][]int{{2, 7, 6, 3}},
			build: func(tp *Tape, in []*Var) *Var { return MaxPool2D(tp, in[0], 3, 2, 1) },
			ref:   func(in [][]float64) []float64 { return refPool(in[0], 2, 7, 6, 3, 3, 2, 1, true) }},
		{name: "maxpool3s2p1c17", shapes: [][]int{{1, 5, 5, 17}}, // the vector path's 16 channels and a tail
			build: func(tp *Tape, in []*Var) *Var { return MaxPool2D(tp, in[0], 3, 2, 1) },
			ref:   func(in [][]float64) []float64 { return refPool(in[0], 1, 5, 5, 17, 3, 2, 1, true) }},
		{name: "avgpool2s2", shapes: [][]int{{2, 6, 6, 3}},
			build: func(tp *Tape, in []*Var) *Var { return AvgPool2D(tp, in[0], 2, 2, 0) },
			ref:   func(in [][]float64) []float64 { return refPool(in[0], 2, 6, 6, 3, 2, 2, 0, false) }},
		{name: "avgpool3s1p1", shapes: [][]int{{1, 4, 5, 2}},
			build: func(tp *Tape, in []*Var) *Var { return AvgPool2D(tp, in[0], 3, 1, 1) },
			ref:   func(in [][]float64) []float64 { return refPool(in[0], 1, 4, 5, 2, 3, 1, 1, false) }},
		{name: "globalavgpool", shapes: [][]int{{2, 3, 4, 5}},
			build: func(tp *Tape, in []*Var) *Var { return GlobalAvgPool(tp, in[0]) },
			ref: func(in [][]float64) []float64 {
				out := make([]float64, 10)
				for i, v := range in[0] {
					out[(i/60)*5+i%5] += v / 12
				}
				return out
			}},
		{name: "upsample2", shapes: [][]int{{2, 2, 3, 2}},
			build: func(tp *Tape, in []*Var) *Var { return UpsampleNearest(tp, in[0], 2) },
			ref: func(in [][]float64) []float64 {
				out := make([]float64, 2*4*6*2)
				for b := range 2 {
					for y := range 4 {
						for x := range 6 {
							for c := range 2 {
								out[((b*4+y)*6+x)*2+c] = in[0][((b*2+y/2)*3+x/2)*2+c]
							}
						}
					}
				}
				return out
			}},
		{name: "linear", shapes: [][]int{{3, 7}, {4, 7}, {4}},
			build: func(tp *Tape, in []*Var) *Var { return Linear(tp, in[0], in[1], in[2]) },
			ref: func(in [][]float64) []float64 {
				out := make([]float64, 12)
				for i := range 3 {
					for o := range 4 {
						s := in[2][o]
						for k := range 7 {
							s += in[0][i*7+k] * in[1][o*7+k]
						}
						out[i*4+o] = s
					}
				}
				return out
			}},
		{name: "add", shapes: [][]int{{3, 4}, {3, 4}},
			build: func(tp *Tape, in []*Var) *Var { return Add(tp, in[0], in[1]) },
			ref: func(in [][]float64) []float64 {
				out := make([]float64, 12)
				for i := range out {
					out[i] = in[0][i] + in[1][i]
				}
				return out
			}},
		{name: "addrelu-chain", shapes: [][]int{{3, 20}, {3, 20}},
			build: func(tp *Tape, in []*Var) *Var { return AddReLU(tp, Scale(tp, in[0], 2), in[1]) },
			ref: func(in [][]float64) []float64 {
				out := make([]float64, 60)
				for i := range out {
					out[i] = max(0, 2*in[0][i]+in[1][i])
				}
				return out
			}},
		{name: "gram", shapes: [][]int{{2, 3, 2, 4}},
			build: func(tp *Tape, in []*Var) *Var { return Gram(tp, in[0]) },
			ref: func(in [][]float64) []float64 {
				out := make([]float64, 2*16)
				for b := range 2 {
					for i := range 4 {
						for j := range 4 {
							for p := range 6 {
								out[b*16+i*4+j] += in[0][(b*6+p)*4+i] * in[0][(b*6+p)*4+j] / 6
							}
						}
					}
				}
				return out
			}},
		{name: "snnl", shapes: [][]int{{6, 3}},
			build: func(tp *Tape, in []*Var) *Var {
				return SNNL(tp, in[0], snnlLabels, snnlInclude, 1.5)
			},
			ref: func(in [][]float64) []float64 { return []float64{refSNNL(in[0], 3, snnlLabels, snnlInclude, 1.5)} }},
		{name: "mse", shapes: [][]int{{3, 5}},
			build: func(tp *Tape, in []*Var) *Var { return MSELoss(tp, in[0], target.Data) },
			ref: func(in [][]float64) []float64 {
				var s float64
				for i, v := range in[0] {
					d := v - t64[i]
					s += d * d
				}
				return []float64{s / 15}
			}},
		{name: "square+sqrt", shapes: [][]int{{3, 5}}, positive: []bool{true},
			build: func(tp *Tape, in []*Var) *Var { return Sqrt(tp, Square(tp, in[0]), 1e-3) },
			ref:   elementwise(func(v float64) float64 { return math.Sqrt(v*v + 1e-3) })},
		{name: "concat+reshape", shapes: [][]int{{2, 2, 2}, {2, 2, 3}},
			build: func(tp *Tape, in []*Var) *Var { return Reshape(tp, Concat(tp, in[0], in[1]), 4, -1) },
			ref: func(in [][]float64) []float64 {
				var out []float64
				for r := range 4 {
					out = append(out, in[0][r*2:(r+1)*2]...)
					out = append(out, in[1][r*3:(r+1)*3]...)
				}
				return out
			}},
		{name: "dropout", shapes: [][]int{{5, 6}},
			build: func(tp *Tape, in []*Var) *Var {
				return Dropout(tp, in[0], 0.3, true, rand.New(rand.NewPCG(9, 9)))
			},
			ref: func(in [][]float64) []float64 {
				rng := rand.New(rand.NewPCG(9, 9))
				out := make([]float64, len(in[0]))
				for i, v := range in[0] {
					if rng.Float32() >= 0.3 {
						out[i] = v * float64(1/(1-float32(0.3)))
					}
				}
				return out
			}},
		{name: "logsoftmax", shapes: [][]int{{3, 5}},
			build: func(tp *Tape, in []*Var) *Var { return LogSoftmax(tp, in[0]) },
			ref:   func(in [][]float64) []float64 { return refLogSoftmax(in[0], 5) }},
		{name: "softmax", shapes: [][]int{{3, 5}},
			build: func(tp *Tape, in []*Var) *Var { return Softmax(tp, in[0]) },
			ref: func(in [][]float64) []float64 {
				out := refLogSoftmax(in[0], 5)
				for i := range out {
					out[i] = math.Exp(out[i])
				}
				return out
			}},
		{name: "crossentropy", shapes: [][]int{{3, 5}},
			build: func(tp *Tape, in []*Var) *Var { return CrossEntropy(tp, in[0], labels) },
			ref: func(in [][]float64) []float64 {
				lp := refLogSoftmax(in[0], 5)
				var s float64
				for i, l := range labels {
					s -= lp[i*5+l]
				}
				return []float64{s / 3}
			}},
		{name: "softcrossentropy", shapes: [][]int{{3, 5}},
			build: func(tp *Tape, in []*Var) *Var { return SoftCrossEntropy(tp, in[0], target) },
			ref: func(in [][]float64) []float64 {
				lp := refLogSoftmax(in[0], 5)
				var s float64
				for i, tv := range t64 {
					s -= tv * lp[i]
				}
				return []float64{s / 3}
			}},
		{name: "kldiv", shapes: [][]int{{3, 5}},
			build: func(tp *Tape, in []*Var) *Var { return KLDiv(tp, in[0], target) },
			ref: func(in [][]float64) []float64 {
				lp := refLogSoftmax(in[0], 5)
				var s float64
				for i, tv := range t64 {
					s += tv * (math.Log(tv) - lp[i])
				}
				return []float64{s / 3}
			}},
		{name: "l1", shapes: [][]int{{3, 5}, {3, 5}},
			build: func(tp *Tape, in []*Var) *Var { return L1Loss(tp, in[0], in[1]) },
			ref: func(in [][]float64) []float64 {
				var s float64
				for i := range in[0] {
					s += math.Abs(in[0][i] - in[1][i])
				}
				return []float64{s / 15}
			}},
		{name: "mean+scale", shapes: [][]int{{3, 5}},
			build: func(tp *Tape, in []*Var) *Var { return Mean(tp, Scale(tp, in[0], 3)) },
			ref: func(in [][]float64) []float64 {
				var s float64
				for _, v := range in[0] {
					s += 3 * v
				}
				return []float64{s / 15}
			}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) { checkOp(t, c) })
	}
}

func refPool(x []float64, n, h, w, c, k, s, p int, isMax bool) []float64 {
	ho, wo := (h+2*p-k)/s+1, (w+2*p-k)/s+1
	out := make([]float64, n*ho*wo*c)
	for b := range n {
		for oy := range ho {
			for ox := range wo {
				for ch := range c {
					acc := 0.0
					if isMax {
						acc = math.Inf(-1)
					}
					for ky := range k {
						for kx := range k {
							iy, ix := oy*s-p+ky, ox*s-p+kx
							if iy < 0 || iy >= h || ix < 0 || ix >= w {
								continue
							}
							v := x[((b*h+iy)*w+ix)*c+ch]
							if isMax {
								acc = max(acc, v)
							} else {
								acc += v / float64(k*k)
							}
						}
					}
					out[((b*ho+oy)*wo+ox)*c+ch] = acc
				}
			}
		}
	}
	return out
}

func TestBackwardErrors(t *testing.T) {
	tp := NewTape(true)
	x := Leaf(tensor.New(2, 3))
	if err := tp.Backward(ReLU(tp, x)); err == nil {
		t.Fatal("Backward of a non-scalar must fail")
	}
	if err := NewTape(false).Backward(Mean(nil, x)); err == nil {
		t.Fatal("Backward on a non-recording tape must fail")
	}
	c := Const(tensor.New(2))
	if err := tp.Backward(Mean(tp, c)); err == nil {
		t.Fatal("Backward of a loss without parameters must fail")
	}
}

// The tape recycles storage: a second step of the same shapes allocates nothing new.
func TestTapeReuse(t *testing.T) {
	tp := NewTape(true)
	w := Leaf(tensor.New(4, 3, 3, 2))
	x := Const(tensor.New(2, 5, 5, 2))
	step := func() {
		loss := Mean(tp, ReLU(tp, Conv2D(tp, x, w, nil, 1, 1)))
		if err := tp.Backward(loss); err != nil {
			t.Fatal(err)
		}
		tp.Reset()
	}
	step()
	allocs := testing.AllocsPerRun(5, step)
	if allocs > 200 {
		t.Errorf("a repeated step made %v allocations", allocs)
	}
	_ = fmt.Sprint()
}

// Row 4 is excluded; row 5's label has no other included row, so it adds no term but is a
// neighbour of the others.
var (
	snnlLabels  = []int{0, 1, 0, 1, 0, 2}
	snnlInclude = []bool{true, true, true, true, false, true}
)

// refSNNL is the soft nearest-neighbour loss by its definition, in float64.
func refSNNL(h []float64, d int, labels []int, include []bool, temp float64) float64 {
	var loss float64
	n := 0
	for i := range labels {
		if include[i] {
			n++
		}
	}
	for i := range labels {
		if !include[i] {
			continue
		}
		var num, den float64
		for j := range labels {
			if j == i || !include[j] {
				continue
			}
			var s float64
			for k := range d {
				v := h[i*d+k] - h[j*d+k]
				s += v * v
			}
			e := math.Exp(-s / temp)
			den += e
			if labels[j] == labels[i] {
				num += e
			}
		}
		if num > 0 {
			loss -= math.Log(num / den)
		}
	}
	return loss / float64(n)
}
