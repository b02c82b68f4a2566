package nn

import (
	"fmt"

	"move/internal/tensor"
)

// Var is a value in a computation and, after Tape.Backward, the gradient of the loss with
// respect to it.
type Var struct {
	Value *tensor.Tensor
	Grad  *tensor.Tensor // nil until a gradient reaches it
	// ExGrad is, for a parameter after a Backward in per-example mode (Tape.PerExample), one
	// gradient per example of the batch: [N] followed by the parameter's shape.
	ExGrad *tensor.Tensor
	// requires marks variables whose gradient is wanted, and those computed from them.
	requires bool
	// pooled marks variables whose storage belongs to a tape and is recycled by Reset.
	pooled bool
}

// Const wraps a tensor that needs no gradient.
func Const(t *tensor.Tensor) *Var { return &Var{Value: t} }

// Leaf wraps a tensor whose gradient is wanted (a parameter, or an image being optimised).
// Its Grad is allocated at once and accumulates over Backward calls until ZeroGrad.
func Leaf(t *tensor.Tensor) *Var {
	return &Var{Value: t, Grad: tensor.New(t.Shape...), requires: true}
}

// RequiresGrad reports whether a gradient flows to this variable.
func (v *Var) RequiresGrad() bool { return v.requires }

// Shape is the value's shape.
func (v *Var) Shape() []int { return v.Value.Shape }

// Data is the value's storage.
func (v *Var) Data() []float32 { return v.Value.Data }

// ZeroGrad clears the accumulated gradient (and the per-example ones).
func (v *Var) ZeroGrad() {
	if v.Grad != nil {
		clear(v.Grad.Data)
	}
	if v.ExGrad != nil {
		clear(v.ExGrad.Data)
	}
}

// Tape records the backward step of every operation applied through it while recording is on,
// and owns the storage of the intermediate values, which Reset recycles. A tape is used by one
// goroutine at a time. A nil *Tape is valid and records nothing (inference).
type Tape struct {
	record bool
	steps  []func()
	free   map[int][][]float32
	used   [][]float32
	tracer func(Node)
	limit  int
	perEx  bool
}

// PerExample switches per-example gradients on or off. While on, the gradient that an
// operation on a batch of N examples sends to a parameter (a leaf variable) goes to the
// parameter's ExGrad, one gradient per example, instead of being summed into its Grad: one
// batched forward and backward pass gives what N passes of one example each would. They are
// the gradients of the loss as computed, so with a mean over the batch each is 1/N of its
// example's own. Conv2D, Linear and batch norm in inference mode support it (batch
// statistics in training mode couple the examples); any other operation that reaches a
// parameter panics.
func (tp *Tape) PerExample(on bool) { tp.perEx = on }

// exGrad returns v's per-example gradient buffer for a batch of n examples, zeroed when it
// is allocated; it accumulates over Backward calls like Grad, until ZeroGrad.
func (tp *Tape) exGrad(v *Var, n int) []float32 {
	if v.ExGrad == nil || v.ExGrad.Shape[0] != n {
		v.ExGrad = tensor.New(append([]int{n}, v.Value.Shape...)...)
	}
	return v.ExGrad.Data
}

// leafCheck panics when, in per-example mode, an operation without per-example support
// would sum a gradient into a parameter.
func (tp *Tape) leafCheck(v *Var) {
	if tp.perEx && v.requires && !v.pooled {
		panic("nn: per-example gradients reach a parameter through an operation that does not support them (Conv2D, Linear and inference-mode batch norm do)")
	}
}

// Limit makes the tape refuse (panic) to allocate any tensor of more than n elements (0: no
// limit): a check run on an untrusted graph cannot exhaust memory.
func (tp *Tape) Limit(n int) { tp.limit = n }

// NewTape returns a tape; record says whether backward steps are kept.
func NewTape(record bool) *Tape {
	return &Tape{record: record, free: map[int][][]float32{}}
}

// Recording reports whether backward steps are being kept.
func (tp *Tape) Recording() bool { return tp != nil && tp.record }

func (tp *Tape) buf(n int) []float32 {
	if tp == nil {
		return make([]float32, n)
	}
	if tp.limit > 0 && n > tp.limit {
		panic(fmt.Sprintf("a tensor of %d elements exceeds the limit of %d", n, tp.limit))
	}
	var b []float32
	if l := tp.free[n]; len(l) > 0 {
		b = l[len(l)-1]
		tp.free[n] = l[:len(l)-1]
	} else {
		b = make([]float32, n)
	}
	tp.used = append(tp.used, b)
	return b
}

// alloc returns an uninitialised tensor owned by the tape.
func (tp *Tape) alloc(shape ...int) *tensor.Tensor {
	return &tensor.Tensor{Shape: append([]int(nil), shape...), Data: tp.buf(tensor.Numel(shape))}
}

// zeros returns a zeroed tensor owned by the tape.
func (tp *Tape) zeros(shape ...int) *tensor.Tensor {
	t := tp.alloc(shape...)
	clear(t.Data)
	return t
}

// out makes the result variable of an operation on the given inputs.
func (tp *Tape) out(value *tensor.Tensor, inputs ...*Var) *Var {
	v := &Var{Value: value, pooled: true}
	if tp.Recording() {
		for _, in := range inputs {
			if in != nil && in.requires {
				v.requires = true
				break
			}
		}
	}
	return v
}

// push records a backward step for an output that requires a gradient.
func (tp *Tape) push(out *Var, step func()) {
	if out.requires {
		tp.steps = append(tp.steps, step)
	}
}

// grad returns v's gradient buffer, allocating a zeroed one if none exists yet.
func (tp *Tape) grad(v *Var) []float32 {
	tp.leafCheck(v)
	if v.Grad == nil {
		if v.pooled {
			v.Grad = tp.zeros(v.Value.Shape...)
		} else {
			v.Grad = tensor.New(v.Value.Shape...)
		}
	}
	return v.Grad.Data
}

// gradFor returns the buffer that receives v's gradient and whether the caller must
// overwrite it (a fresh, uninitialised buffer) rather than add to it. Writing fresh buffers
// instead of zeroing then adding saves a pass over memory for most intermediate values.
func (tp *Tape) gradFor(v *Var) (buf []float32, overwrite bool) {
	tp.leafCheck(v)
	if v.Grad != nil {
		return v.Grad.Data, false
	}
	if v.pooled {
		v.Grad = tp.alloc(v.Value.Shape...)
		return v.Grad.Data, true
	}
	v.Grad = tensor.New(v.Value.Shape...)
	return v.Grad.Data, false
}

// passGrad gives v the gradient g, which the caller no longer needs: when v has no gradient
// yet and belongs to the tape, g's storage becomes v's gradient without a copy; otherwise g
// is added to v's gradient.
func (tp *Tape) passGrad(v *Var, g []float32) {
	tp.leafCheck(v)
	if v.Grad == nil && v.pooled {
		v.Grad = &tensor.Tensor{Shape: v.Value.Shape, Data: g}
		return
	}
	dst, over := tp.gradFor(v)
	if over {
		copy(dst, g)
		return
	}
	addTo(dst, g)
}

// Backward propagates the gradient of a scalar loss to every variable that requires one.
// Gradients accumulate into Grad.
func (tp *Tape) Backward(loss *Var) error {
	if !tp.Recording() {
		return fmt.Errorf("nn: Backward on a tape that is not recording")
	}
	if loss.Value.Len() != 1 {
		return fmt.Errorf("nn: Backward needs a scalar loss, got shape %v", loss.Shape())
	}
	if !loss.requires {
		return fmt.Errorf("nn: the loss does not depend on anything that requires a gradient")
	}
	tp.grad(loss)[0] += 1
	for i := len(tp.steps) - 1; i >= 0; i-- {
		tp.steps[i]()
	}
	tp.steps = tp.steps[:0]
	return nil
}

// Reset forgets the recorded steps and recycles every tensor the tape allocated. Values and
// gradients of variables computed through the tape must not be used afterwards.
func (tp *Tape) Reset() {
	tp.steps = tp.steps[:0]
	for _, b := range tp.used {
		tp.free[len(b)] = append(tp.free[len(b)], b)
	}
	tp.used = tp.used[:0]
}
