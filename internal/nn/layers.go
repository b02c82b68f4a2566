package nn

import (
	"math"
	"math/rand/v2"

	"move/internal/tensor"
)

// Conv is a convolution layer: weights [Cout][K][K][Cin], optional bias.
type Conv struct {
	W, B        *Var
	Stride, Pad int
}

// NewConv adds a k x k convolution's parameters to s under name (name.weight, name.bias),
// initialised with Kaiming-normal weights and zero bias.
func NewConv(s *Store, name string, cin, cout, k, stride, pad int, bias bool, rng *rand.Rand) *Conv {
	w := tensor.New(cout, k, k, cin)
	KaimingNormal(w, cin*k*k, rng)
	c := &Conv{W: s.Param(name+".weight", w), Stride: stride, Pad: pad}
	if bias {
		c.B = s.Param(name+".bias", tensor.New(cout))
	}
	return c
}

// Apply runs the layer.
func (c *Conv) Apply(tp *Tape, x *Var) *Var { return Conv2D(tp, x, c.W, c.B, c.Stride, c.Pad) }

// NewBatchNorm adds a batch-norm layer over c channels (name.weight, name.bias,
// name.running_mean, name.running_var), with PyTorch's defaults.
func NewBatchNorm(s *Store, name string, c int) *BatchNorm {
	g := tensor.New(c)
	Fill(g, 1)
	v := tensor.New(c)
	Fill(v, 1)
	return &BatchNorm{
		Gamma:    s.Param(name+".weight", g),
		Beta:     s.Param(name+".bias", tensor.New(c)),
		Mean:     s.Buffer(name+".running_mean", tensor.New(c)),
		Var:      s.Buffer(name+".running_var", v),
		Momentum: 0.1,
		Eps:      1e-5,
	}
}

// Apply runs the layer.
func (bn *BatchNorm) Apply(tp *Tape, x *Var, train bool) *Var { return BatchNormOp(tp, x, bn, train) }

// Dense is a fully connected layer, weights [Out][In].
type Dense struct{ W, B *Var }

// NewDense adds a linear layer initialised as PyTorch's nn.Linear: U(±1/√in).
func NewDense(s *Store, name string, in, out int, rng *rand.Rand) *Dense {
	a := 1 / math.Sqrt(float64(in))
	w, b := tensor.New(out, in), tensor.New(out)
	Uniform(w, a, rng)
	Uniform(b, a, rng)
	return &Dense{W: s.Param(name+".weight", w), B: s.Param(name+".bias", b)}
}

// Apply runs the layer.
func (d *Dense) Apply(tp *Tape, x *Var) *Var { return Linear(tp, x, d.W, d.B) }

// ApplyReLU runs the layer followed by a ReLU, fused.
func (bn *BatchNorm) ApplyReLU(tp *Tape, x *Var, train bool) *Var {
	return BatchNormReLU(tp, x, bn, train)
}
