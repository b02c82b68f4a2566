package models

import (
	"fmt"
	"math/rand/v2"

	"move/internal/nn"
)

// basicBlock is the two-convolution residual block of He et al. (2016), post-activation:
// relu(bn2(conv2(relu(bn1(conv1(x))))) + shortcut(x)), with a 1x1 convolution + batch norm
// shortcut when the shape changes (option B).
type basicBlock struct {
	c1, c2 *nn.Conv
	b1, b2 *nn.BatchNorm
	sc     *nn.Conv
	scbn   *nn.BatchNorm
}

func newBasicBlock(s *nn.Store, name string, cin, cout, stride int, rng *rand.Rand, names [4]string) *basicBlock {
	b := &basicBlock{
		c1: nn.NewConv(s, name+"."+names[0], cin, cout, 3, stride, 1, false, rng),
		b1: nn.NewBatchNorm(s, name+"."+names[1], cout),
		c2: nn.NewConv(s, name+"."+names[2], cout, cout, 3, 1, 1, false, rng),
		b2: nn.NewBatchNorm(s, name+"."+names[3], cout),
	}
	if stride != 1 || cin != cout {
		b.sc = nn.NewConv(s, name+".sc", cin, cout, 1, stride, 0, false, rng)
		b.scbn = nn.NewBatchNorm(s, name+".scbn", cout)
	}
	return b
}

func (b *basicBlock) apply(tp *nn.Tape, x *nn.Var, train bool) *nn.Var {
	y := nn.ConvBatchNorm(tp, x, b.c1, b.b1, train, true)
	s := x
	if b.sc != nil {
		s = nn.ConvBatchNorm(tp, x, b.sc, b.scbn, train, false)
	}
	return nn.ConvBatchNormAddReLU(tp, y, b.c2, b.b2, s, train)
}

// cifarResNet is the CIFAR ResNet-(6n+2): a 3x3 stem of 16 channels, three stages of n basic
// blocks with 16, 32 and 64 channels (stride 2 between stages), global average pooling and a
// linear classifier. Names follow ../shared/peer/torch_bench.py.
type cifarResNet struct {
	base
	stem   *nn.Conv
	stembn *nn.BatchNorm
	blocks []*basicBlock
	fc     *nn.Dense
}

func newCIFARResNet(arch string, n, classes int, rng *rand.Rand) Model {
	s := nn.NewStore()
	m := &cifarResNet{base: base{arch: arch, classes: classes, store: s}}
	m.stem = nn.NewConv(s, "stem", 3, 16, 3, 1, 1, false, rng)
	m.stembn = nn.NewBatchNorm(s, "stembn", 16)
	cin := 16
	for stage, w := range []int{16, 32, 64} {
		for i := range n {
			stride := 1
			if i == 0 && stage > 0 {
				stride = 2
			}
			name := fmt.Sprintf("layers.%d", len(m.blocks))
			m.blocks = append(m.blocks, newBasicBlock(s, name, cin, w, stride, rng, [4]string{"c1", "bn1", "c2", "bn2"}))
			cin = w
		}
	}
	m.fc = nn.NewDense(s, "fc", 64, classes, rng)
	return m
}

func (m *cifarResNet) Forward(tp *nn.Tape, x *nn.Var, train bool) *nn.Var {
	return m.fc.Apply(tp, m.Embed(tp, x, train))
}

// Head implements Embedder.
func (m *cifarResNet) Head() *nn.Dense { return m.fc }

// Embed implements Embedder.
func (m *cifarResNet) Embed(tp *nn.Tape, x *nn.Var, train bool) *nn.Var {
	return nn.GlobalAvgPool(tp, m.FeatureMap(tp, x, train))
}

// FeatureMap implements Embedder.
func (m *cifarResNet) FeatureMap(tp *nn.Tape, x *nn.Var, train bool) *nn.Var {
	n := x.Shape()[0]
	y := nn.ConvBatchNorm(tp, x, m.stem, m.stembn, train, true)
	mustShape(y, n, -1, -1, 16)
	for _, b := range m.blocks {
		y = b.apply(tp, y, train)
	}
	mustShape(y, n, -1, -1, 64)
	return y
}

// imageNetResNet is torchvision's ResNet-18/34: a 7x7 stride-2 stem, 3x3 max pooling, four
// stages of basic blocks (64 to 512 channels), global average pooling and a linear classifier.
// Names follow torchvision (conv1, bn1, layerS.I.conv1, ..., fc) except the shortcut.
type imageNetResNet struct {
	base
	conv1  *nn.Conv
	bn1    *nn.BatchNorm
	blocks []*basicBlock
	fc     *nn.Dense
}

func newImageNetResNet(arch string, layers [4]int, classes int, rng *rand.Rand) Model {
	s := nn.NewStore()
	m := &imageNetResNet{base: base{arch: arch, classes: classes, store: s}}
	m.conv1 = nn.NewConv(s, "conv1", 3, 64, 7, 2, 3, false, rng)
	m.bn1 = nn.NewBatchNorm(s, "bn1", 64)
	cin := 64
	for stage, w := range []int{64, 128, 256, 512} {
		for i := range layers[stage] {
			stride := 1
			if i == 0 && stage > 0 {
				stride = 2
			}
			name := fmt.Sprintf("layer%d.%d", stage+1, i)
			m.blocks = append(m.blocks, newBasicBlock(s, name, cin, w, stride, rng, [4]string{"conv1", "bn1", "conv2", "bn2"}))
			cin = w
		}
	}
	m.fc = nn.NewDense(s, "fc", 512, classes, rng)
	return m
}

func (m *imageNetResNet) Forward(tp *nn.Tape, x *nn.Var, train bool) *nn.Var {
	return m.fc.Apply(tp, m.Embed(tp, x, train))
}

// Head implements Embedder.
func (m *imageNetResNet) Head() *nn.Dense { return m.fc }

// Embed implements Embedder.
func (m *imageNetResNet) Embed(tp *nn.Tape, x *nn.Var, train bool) *nn.Var {
	return nn.GlobalAvgPool(tp, m.FeatureMap(tp, x, train))
}

// FeatureMap implements Embedder.
func (m *imageNetResNet) FeatureMap(tp *nn.Tape, x *nn.Var, train bool) *nn.Var {
	n := x.Shape()[0]
	y := nn.ConvBatchNorm(tp, x, m.conv1, m.bn1, train, true)
	y = nn.MaxPool2D(tp, y, 3, 2, 1)
	mustShape(y, n, -1, -1, 64)
	for _, b := range m.blocks {
		y = b.apply(tp, y, train)
	}
	mustShape(y, n, -1, -1, 512)
	return y
}

func init() {
	for _, d := range []int{20, 32, 56} {
		n := (d - 2) / 6
		register(Spec{
			Name:        fmt.Sprintf("resnet%d", d),
			Description: fmt.Sprintf("CIFAR ResNet-%d (He et al. 2016): 16/32/64 channels, %d basic blocks per stage", d, n),
			InputSize:   32,
			build:       func(c int, r *rand.Rand) Model { return newCIFARResNet(fmt.Sprintf("resnet%d", d), n, c, r) },
		})
	}
	for name, layers := range map[string][4]int{"resnet18": {2, 2, 2, 2}, "resnet34": {3, 4, 6, 3}} {
		register(Spec{
			Name:        name,
			Description: "ImageNet ResNet (torchvision layout) for 224x224 inputs",
			InputSize:   224,
			build:       func(c int, r *rand.Rand) Model { return newImageNetResNet(name, layers, c, r) },
		})
	}
}
