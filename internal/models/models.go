// Package models holds the image-classifier architectures as code: CIFAR ResNets, wide
// ResNets, VGG with batch norm and ImageNet-style ResNets. A model is a function of a tape and
// an NHWC batch; its weights live in an nn.Store under PyTorch-like names.
package models

import (
	"fmt"
	"math/rand/v2"
	"sort"
	"strings"

	"move/internal/nn"
)

// Model is an image classifier.
type Model interface {
	// Forward maps an NHWC batch to logits [N][Classes]; train selects batch statistics and
	// dropout.
	Forward(tp *nn.Tape, x *nn.Var, train bool) *nn.Var
	// Store holds the weights and buffers.
	Store() *nn.Store
	// Arch is the registry name.
	Arch() string
	// Classes is the number of outputs.
	Classes() int
}

// Embedder is a model whose logits are a linear head over pooled features: Forward(x) is
// Head().Apply(Embed(x)). Fine-pruning reads the features' activity and prunes the head's
// inputs, class activation maps (Grad-CAM) read the map before pooling; every built-in
// architecture is one (an imported ONNX graph is not).
type Embedder interface {
	Embed(tp *nn.Tape, x *nn.Var, train bool) *nn.Var      // [N][C] pooled features: the mean of FeatureMap
	FeatureMap(tp *nn.Tape, x *nn.Var, train bool) *nn.Var // [N][H'][W'][C] the last layer's map, before pooling
	Head() *nn.Dense                                       // the linear classifier over the pooled features
}

// Cloner is a model that copies itself, weights included: one that New cannot build, such as
// an imported ONNX graph.
type Cloner interface {
	Clone() (Model, error)
}

// Spec describes how to build an architecture.
type Spec struct {
	Name        string
	Description string
	InputSize   int // the size it was designed for (32 or 224); others work if the maps fit
	build       func(classes int, rng *rand.Rand) Model
}

var registry = map[string]Spec{}

func register(s Spec) { registry[s.Name] = s }

// Known returns an error naming the known architectures when arch is not one of them.
func Known(arch string) error {
	if _, ok := registry[arch]; !ok {
		return fmt.Errorf("unknown architecture %q (known: %s)", arch, strings.Join(Names(), ", "))
	}
	return nil
}

// New builds an architecture by name with freshly initialised weights drawn from seed.
func New(arch string, classes int, seed uint64) (Model, error) {
	if err := Known(arch); err != nil {
		return nil, err
	}
	s := registry[arch]
	if classes < 2 {
		return nil, fmt.Errorf("architecture %s: need at least 2 classes, got %d", arch, classes)
	}
	return s.build(classes, rand.New(rand.NewPCG(seed, 0x6d6f7665))), nil
}

// Lookup returns an architecture's spec.
func Lookup(arch string) (Spec, bool) {
	s, ok := registry[arch]
	return s, ok
}

// Names lists the registered architectures, sorted.
func Names() []string {
	var out []string
	for n := range registry {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// base carries what every model shares.
type base struct {
	arch    string
	classes int
	store   *nn.Store
}

func (b *base) Store() *nn.Store { return b.store }
func (b *base) Arch() string     { return b.arch }
func (b *base) Classes() int     { return b.classes }

// mustShape documents and checks a block's output shape (NHWC; -1 matches anything).
func mustShape(v *nn.Var, want ...int) {
	s := v.Shape()
	ok := len(s) == len(want)
	for i := 0; ok && i < len(s); i++ {
		ok = want[i] == -1 || want[i] == s[i]
	}
	if !ok {
		panic(fmt.Sprintf("models: shape %v, want %v", s, want))
	}
}
