package nn

import (
	"fmt"
	"math"

	"move/internal/tensor"
)

// logSoftmaxRows writes log-softmax of each row of x (rows of c) into out, in float64 inside.
func logSoftmaxRows(out, x []float32, c int) {
	for r := 0; r < len(x)/c; r++ {
		row, o := x[r*c:(r+1)*c], out[r*c:(r+1)*c]
		m := row[0]
		for _, v := range row {
			m = max(m, v)
		}
		var s float64
		for _, v := range row {
			s += math.Exp(float64(v - m))
		}
		lse := float64(m) + math.Log(s)
		for j, v := range row {
			o[j] = float32(float64(v) - lse)
		}
	}
}

// LogSoftmax is log(softmax(x)) over the last axis.
func LogSoftmax(tp *Tape, x *Var) *Var {
	c := x.Shape()[len(x.Shape())-1]
	y := tp.out(tp.alloc(x.Shape()...), x)
	logSoftmaxRows(y.Data(), x.Data(), c)
	if tp.tracing() {
		tp.trace(Node{Op: "LogSoftmax", In: []*Var{x}, Out: y})
	}
	tp.push(y, func() {
		if y.Grad == nil || !x.requires {
			return
		}
		// dx = dy - softmax·Σdy
		dx, dy, yd := tp.grad(x), y.Grad.Data, y.Data()
		for r := 0; r < len(yd)/c; r++ {
			var s float64
			for j := range c {
				s += float64(dy[r*c+j])
			}
			for j := range c {
				dx[r*c+j] += dy[r*c+j] - float32(math.Exp(float64(yd[r*c+j]))*s)
			}
		}
	})
	return y
}

// Softmax is exp(x)/Σexp(x) over the last axis.
func Softmax(tp *Tape, x *Var) *Var {
	c := x.Shape()[len(x.Shape())-1]
	y := tp.out(tp.alloc(x.Shape()...), x)
	yd := y.Data()
	logSoftmaxRows(yd, x.Data(), c)
	for i, v := range yd {
		yd[i] = float32(math.Exp(float64(v)))
	}
	if tp.tracing() {
		tp.trace(Node{Op: "Softmax", In: []*Var{x}, Out: y})
	}
	tp.push(y, func() {
		if y.Grad == nil || !x.requires {
			return
		}
		// dx = y·(dy - Σ y·dy)
		dx, dy := tp.grad(x), y.Grad.Data
		for r := 0; r < len(yd)/c; r++ {
			var s float64
			for j := range c {
				s += float64(yd[r*c+j] * dy[r*c+j])
			}
			for j := range c {
				dx[r*c+j] += yd[r*c+j] * (dy[r*c+j] - float32(s))
			}
		}
	})
	return y
}

// SoftmaxProbs returns the softmax of each row of logits [N][K] as a plain tensor.
func SoftmaxProbs(logits *tensor.Tensor) *tensor.Tensor {
	out := tensor.New(logits.Shape...)
	logSoftmaxRows(out.Data, logits.Data, logits.Dim(-1))
	for i, v := range out.Data {
		out.Data[i] = float32(math.Exp(float64(v)))
	}
	return out
}

// scalarLoss builds a scalar output whose backward passes g·(per-element gradient).
func scalarLoss(tp *Tape, value float64, x *Var, grad func(dx []float32, g float32)) *Var {
	y := tp.out(tp.alloc(1), x)
	y.Data()[0] = float32(value)
	tp.push(y, func() {
		if y.Grad == nil || !x.requires {
			return
		}
		grad(tp.grad(x), y.Grad.Data[0])
	})
	return y
}

// CrossEntropy is the mean over the batch of -log softmax(logits)[label], logits [N][K].
func CrossEntropy(tp *Tape, logits *Var, labels []int) *Var {
	n, k := logits.Shape()[0], logits.Shape()[1]
	if len(labels) != n {
		panic(fmt.Sprintf("nn.CrossEntropy: %d labels for %d rows", len(labels), n))
	}
	lp := make([]float32, n*k)
	logSoftmaxRows(lp, logits.Data(), k)
	var loss float64
	for i, l := range labels {
		if l < 0 || l >= k {
			panic(fmt.Sprintf("nn.CrossEntropy: label %d outside [0, %d)", l, k))
		}
		loss -= float64(lp[i*k+l])
	}
	return scalarLoss(tp, loss/float64(n), logits, func(dx []float32, g float32) {
		s := g / float32(n)
		for i, l := range labels {
			for j := range k {
				p := float32(math.Exp(float64(lp[i*k+j])))
				if j == l {
					p--
				}
				dx[i*k+j] += s * p
			}
		}
	})
}

// SoftCrossEntropy is the mean over the batch of -Σ_j target_j·log softmax(logits)_j, for
// target probabilities [N][K] (soft labels; they get no gradient).
func SoftCrossEntropy(tp *Tape, logits *Var, target *tensor.Tensor) *Var {
	n, k := logits.Shape()[0], logits.Shape()[1]
	if !tensor.SameShape(logits.Shape(), target.Shape) {
		panic(fmt.Sprintf("nn.SoftCrossEntropy: logits %v and targets %v differ", logits.Shape(), target.Shape))
	}
	lp := make([]float32, n*k)
	logSoftmaxRows(lp, logits.Data(), k)
	var loss float64
	for i, t := range target.Data {
		loss -= float64(t) * float64(lp[i])
	}
	return scalarLoss(tp, loss/float64(n), logits, func(dx []float32, g float32) {
		s := g / float32(n)
		for i := range n {
			var tsum float32
			for j := range k {
				tsum += target.Data[i*k+j]
			}
			for j := range k {
				dx[i*k+j] += s * (tsum*float32(math.Exp(float64(lp[i*k+j]))) - target.Data[i*k+j])
			}
		}
	})
}

// KLDiv is the mean over the batch of KL(target ‖ softmax(logits)) = Σ t·(log t - log p):
// PyTorch's kl_div(log_softmax(logits), target, reduction="batchmean").
func KLDiv(tp *Tape, logits *Var, target *tensor.Tensor) *Var {
	ce := SoftCrossEntropy(tp, logits, target)
	var ent float64
	for _, t := range target.Data {
		if t > 0 {
			ent += float64(t) * math.Log(float64(t))
		}
	}
	ce.Data()[0] += float32(ent / float64(logits.Shape()[0]))
	return ce
}

// L1Loss is the mean absolute difference between two tensors of the same shape; both may
// carry gradients (the data-free attack trains its generator through it).
func L1Loss(tp *Tape, a, b *Var) *Var {
	if !tensor.SameShape(a.Shape(), b.Shape()) {
		panic(fmt.Sprintf("nn.L1Loss: shapes %v and %v differ", a.Shape(), b.Shape()))
	}
	ad, bd := a.Data(), b.Data()
	var s float64
	for i := range ad {
		s += math.Abs(float64(ad[i] - bd[i]))
	}
	n := float32(len(ad))
	y := tp.out(tp.alloc(1), a, b)
	y.Data()[0] = float32(s / float64(n))
	tp.push(y, func() {
		if y.Grad == nil {
			return
		}
		g := y.Grad.Data[0] / n
		sign := func(d float32) float32 {
			switch {
			case d > 0:
				return g
			case d < 0:
				return -g
			}
			return 0
		}
		if a.requires {
			da := tp.grad(a)
			for i := range ad {
				da[i] += sign(ad[i] - bd[i])
			}
		}
		if b.requires {
			db := tp.grad(b)
			for i := range ad {
				db[i] -= sign(ad[i] - bd[i])
			}
		}
	})
	return y
}

// Mean is the mean of all elements.
func Mean(tp *Tape, x *Var) *Var {
	var s float64
	for _, v := range x.Data() {
		s += float64(v)
	}
	n := float32(x.Value.Len())
	return scalarLoss(tp, s/float64(n), x, func(dx []float32, g float32) {
		for i := range dx {
			dx[i] += g / n
		}
	})
}
