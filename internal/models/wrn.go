package models

import (
	"fmt"
	"math/rand/v2"

	"move/internal/nn"
)

// preactBlock is the wide-ResNet block (Zagoruyko & Komodakis 2016), pre-activation:
// o = relu(bn1(x)); y = conv2(relu(bn2(conv1(o)))); out = y + (x or conv1x1(o)).
type preactBlock struct {
	b1, b2 *nn.BatchNorm
	c1, c2 *nn.Conv
	sc     *nn.Conv
	drop   float32
}

func (b *preactBlock) apply(tp *nn.Tape, x *nn.Var, train bool, rng *rand.Rand) *nn.Var {
	o := b.b1.ApplyReLU(tp, x, train)
	y := nn.ConvBatchNorm(tp, o, b.c1, b.b2, train, true)
	y = nn.Dropout(tp, y, b.drop, train, rng)
	y = b.c2.Apply(tp, y)
	s := x
	if b.sc != nil {
		s = b.sc.Apply(tp, o)
	}
	return nn.Add(tp, y, s)
}

// wideResNet is WRN-depth-k: a 16-channel stem, three stages of (depth-4)/6 pre-activation
// blocks with 16k, 32k, 64k channels, a final batch norm + ReLU, global pooling and a linear
// classifier. Names follow ../shared/peer/torch_bench.py.
type wideResNet struct {
	base
	stem    *nn.Conv
	blocks  []*preactBlock
	finalbn *nn.BatchNorm
	fc      *nn.Dense
	width   int
	rng     *rand.Rand
}

func newWideResNet(arch string, depth, k, classes int, rng *rand.Rand) Model {
	s := nn.NewStore()
	m := &wideResNet{base: base{arch: arch, classes: classes, store: s}, width: 64 * k, rng: rand.New(rand.NewPCG(rng.Uint64(), 1))}
	m.stem = nn.NewConv(s, "stem", 3, 16, 3, 1, 1, false, rng)
	cin := 16
	n := (depth - 4) / 6
	for stage, w := range []int{16 * k, 32 * k, 64 * k} {
		for i := range n {
			stride := 1
			if i == 0 && stage > 0 {
				stride = 2
			}
			name := fmt.Sprintf("layers.%d", len(m.blocks))
			b := &preactBlock{
				b1: nn.NewBatchNorm(s, name+".bn1", cin),
				c1: nn.NewConv(s, name+".c1", cin, w, 3, stride, 1, false, rng),
				b2: nn.NewBatchNorm(s, name+".bn2", w),
				c2: nn.NewConv(s, name+".c2", w, w, 3, 1, 1, false, rng),
			}
			if stride != 1 || cin != w {
				b.sc = nn.NewConv(s, name+".sc", cin, w, 1, stride, 0, false, rng)
			}
			m.blocks = append(m.blocks, b)
			cin = w
		}
	}
	m.finalbn = nn.NewBatchNorm(s, "finalbn", cin)
	m.fc = nn.NewDense(s, "fc", cin, classes, rng)
	return m
}

func (m *wideResNet) Forward(tp *nn.Tape, x *nn.Var, train bool) *nn.Var {
	return m.fc.Apply(tp, m.Embed(tp, x, train))
}

// Head implements Embedder.
func (m *wideResNet) Head() *nn.Dense { return m.fc }

// Embed implements Embedder.
func (m *wideResNet) Embed(tp *nn.Tape, x *nn.Var, train bool) *nn.Var {
	return nn.GlobalAvgPool(tp, m.FeatureMap(tp, x, train))
}

// FeatureMap implements Embedder.
func (m *wideResNet) FeatureMap(tp *nn.Tape, x *nn.Var, train bool) *nn.Var {
	n := x.Shape()[0]
	y := m.stem.Apply(tp, x)
	mustShape(y, n, -1, -1, 16)
	for _, b := range m.blocks {
		y = b.apply(tp, y, train, m.rng)
	}
	mustShape(y, n, -1, -1, m.width)
	return m.finalbn.ApplyReLU(tp, y, train)
}

func init() {
	for _, c := range []struct{ depth, k int }{{16, 1}, {16, 4}, {28, 10}} {
		name := fmt.Sprintf("wrn%d-%d", c.depth, c.k)
		register(Spec{
			Name:        name,
			Description: fmt.Sprintf("wide ResNet WRN-%d-%d (Zagoruyko & Komodakis 2016), pre-activation", c.depth, c.k),
			InputSize:   32,
			build:       func(cl int, r *rand.Rand) Model { return newWideResNet(name, c.depth, c.k, cl, r) },
		})
	}
}
