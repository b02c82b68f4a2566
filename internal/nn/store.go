package nn

import (
	"fmt"
	"math"
	"math/rand/v2"
	"sort"

	"move/internal/tensor"
)

// Store holds a model's named tensors in creation order: trainable parameters (with
// gradients) and buffers such as batch-norm running statistics.
type Store struct {
	names  []string
	vars   map[string]*Var
	params []*Var
	pnames []string
}

// NewStore returns an empty store.
func NewStore() *Store { return &Store{vars: map[string]*Var{}} }

func (s *Store) add(name string, v *Var) {
	if _, dup := s.vars[name]; dup {
		panic(fmt.Sprintf("nn.Store: duplicate tensor name %q", name))
	}
	s.names = append(s.names, name)
	s.vars[name] = v
}

// Param adds a trainable tensor.
func (s *Store) Param(name string, t *tensor.Tensor) *Var {
	v := Leaf(t)
	s.add(name, v)
	s.params = append(s.params, v)
	s.pnames = append(s.pnames, name)
	return v
}

// Buffer adds a tensor that is saved with the model but not trained.
func (s *Store) Buffer(name string, t *tensor.Tensor) *tensor.Tensor {
	s.add(name, Const(t))
	return t
}

// Names lists every tensor name in creation order.
func (s *Store) Names() []string { return s.names }

// Tensor returns the named tensor, or nil.
func (s *Store) Tensor(name string) *tensor.Tensor {
	if v, ok := s.vars[name]; ok {
		return v.Value
	}
	return nil
}

// Freeze stops (or, with false, restarts) gradients flowing to the parameters: a frozen
// model still passes gradients to its input (a teacher that a generator learns through)
// without computing the gradients of its weights.
func (s *Store) Freeze(frozen bool) {
	for _, v := range s.params {
		v.requires = !frozen
	}
}

// Params returns the trainable variables in creation order.
func (s *Store) Params() []*Var { return s.params }

// ParamNames returns the names of Params, in the same order.
func (s *Store) ParamNames() []string { return s.pnames }

// NumParams counts trainable scalars.
func (s *Store) NumParams() int {
	n := 0
	for _, p := range s.params {
		n += p.Value.Len()
	}
	return n
}

// ZeroGrad clears every parameter's gradient.
func (s *Store) ZeroGrad() {
	for _, p := range s.params {
		p.ZeroGrad()
	}
}

// Load copies values from named tensors into the store. Every tensor of the store must be
// present with the same shape; extra names are an error too, so a wrong file never half-loads.
func (s *Store) Load(src map[string]*tensor.Tensor) error {
	for _, n := range s.names {
		t, ok := src[n]
		if !ok {
			return fmt.Errorf("tensor %q is missing", n)
		}
		if !tensor.SameShape(t.Shape, s.vars[n].Value.Shape) {
			return fmt.Errorf("tensor %q has shape %v, the architecture needs %v", n, t.Shape, s.vars[n].Value.Shape)
		}
	}
	if len(src) != len(s.names) {
		var extra []string
		for n := range src {
			if _, ok := s.vars[n]; !ok {
				extra = append(extra, n)
			}
		}
		sort.Strings(extra)
		return fmt.Errorf("unexpected tensors %v", extra)
	}
	for _, n := range s.names {
		copy(s.vars[n].Value.Data, src[n].Data)
	}
	return nil
}

// Map returns the store's tensors by name (sharing storage).
func (s *Store) Map() map[string]*tensor.Tensor {
	m := make(map[string]*tensor.Tensor, len(s.names))
	for _, n := range s.names {
		m[n] = s.vars[n].Value
	}
	return m
}

// Initialisers.

// KaimingNormal fills t with N(0, 2/fanIn), He et al.'s initialisation for ReLU networks.
func KaimingNormal(t *tensor.Tensor, fanIn int, rng *rand.Rand) {
	std := math.Sqrt(2 / float64(fanIn))
	for i := range t.Data {
		t.Data[i] = float32(rng.NormFloat64() * std)
	}
}

// Uniform fills t with U(-a, a).
func Uniform(t *tensor.Tensor, a float64, rng *rand.Rand) {
	for i := range t.Data {
		t.Data[i] = float32((2*rng.Float64() - 1) * a)
	}
}

// Fill sets every element to v.
func Fill(t *tensor.Tensor, v float32) {
	for i := range t.Data {
		t.Data[i] = v
	}
}
