package nn

import "math"

// Optimizer updates parameters from their gradients.
type Optimizer interface {
	// Step applies one update with learning rate lr.
	Step(params []*Var, lr float32)
	// State returns the optimiser's per-parameter buffers (for checkpoints), named by suffix.
	State() map[string][][]float32
	// Steps is the number of updates applied so far.
	Steps() int
	// Restore installs checkpointed buffers (as returned by State) and the update count.
	Restore(state map[string][][]float32, steps int)
}

// SGD is stochastic gradient descent with momentum and L2 weight decay, as torch.optim.SGD:
// g = ∇ + wd·p; v = μ·v + g (v = g at the first step); p -= lr·(Nesterov ? g + μ·v : v).
type SGD struct {
	Momentum, WeightDecay float32
	Nesterov              bool
	velocity              [][]float32
	steps                 int
}

// Step implements Optimizer.
func (o *SGD) Step(params []*Var, lr float32) {
	if o.velocity == nil {
		o.velocity = make([][]float32, len(params))
		for i, p := range params {
			o.velocity[i] = make([]float32, p.Value.Len())
		}
	}
	first := o.steps == 0
	for i, p := range params {
		w, g, v := p.Value.Data, p.Grad.Data, o.velocity[i]
		pfor(len(w), func(lo, hi int) {
			for j := lo; j < hi; j++ {
				d := g[j] + o.WeightDecay*w[j]
				if o.Momentum != 0 {
					if first {
						v[j] = d
					} else {
						v[j] = o.Momentum*v[j] + d
					}
					if o.Nesterov {
						d += o.Momentum * v[j]
					} else {
						d = v[j]
					}
				}
				w[j] -= lr * d
			}
		})
	}
	o.steps++
}

// State implements Optimizer.
func (o *SGD) State() map[string][][]float32 { return map[string][][]float32{"momentum": o.velocity} }

// Steps implements Optimizer.
func (o *SGD) Steps() int { return o.steps }

// Restore implements Optimizer.
func (o *SGD) Restore(state map[string][][]float32, steps int) {
	o.velocity, o.steps = state["momentum"], steps
}

// Adam is torch.optim.Adam (L2 weight decay added to the gradient, bias-corrected moments).
type Adam struct {
	Beta1, Beta2, Eps, WeightDecay float32
	m, v                           [][]float32
	steps                          int
}

// NewAdam returns Adam with the usual defaults (0.9, 0.999, 1e-8).
func NewAdam(weightDecay float32) *Adam {
	return &Adam{Beta1: 0.9, Beta2: 0.999, Eps: 1e-8, WeightDecay: weightDecay}
}

// Step implements Optimizer.
func (o *Adam) Step(params []*Var, lr float32) {
	if o.m == nil {
		o.m, o.v = make([][]float32, len(params)), make([][]float32, len(params))
		for i, p := range params {
			o.m[i] = make([]float32, p.Value.Len())
			o.v[i] = make([]float32, p.Value.Len())
		}
	}
	o.steps++
	bc1 := 1 - math.Pow(float64(o.Beta1), float64(o.steps))
	bc2 := 1 - math.Pow(float64(o.Beta2), float64(o.steps))
	stepSize := lr / float32(bc1)
	sq2 := float32(math.Sqrt(bc2))
	for i, p := range params {
		w, g, m, v := p.Value.Data, p.Grad.Data, o.m[i], o.v[i]
		for j := range w {
			d := g[j] + o.WeightDecay*w[j]
			m[j] = o.Beta1*m[j] + (1-o.Beta1)*d
			v[j] = o.Beta2*v[j] + (1-o.Beta2)*d*d
			w[j] -= stepSize * m[j] / (float32(math.Sqrt(float64(v[j])))/sq2 + o.Eps)
		}
	}
}

// State implements Optimizer.
func (o *Adam) State() map[string][][]float32 { return map[string][][]float32{"m": o.m, "v": o.v} }

// Steps implements Optimizer.
func (o *Adam) Steps() int { return o.steps }

// Restore implements Optimizer.
func (o *Adam) Restore(state map[string][][]float32, steps int) {
	o.m, o.v, o.steps = state["m"], state["v"], steps
}
