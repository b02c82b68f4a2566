package models

import (
	"fmt"
	"math/rand/v2"

	"move/internal/nn"
)

// vgg is VGG-11 with batch norm (Simonyan & Zisserman 2015): eight 3x3 conv-BN-ReLU layers
// with five 2x2 max-pools, then global average pooling and a linear classifier (the usual
// CIFAR adaptation; it also runs on 224x224 inputs).
type vgg struct {
	base
	convs []*nn.Conv
	bns   []*nn.BatchNorm
	pool  []bool // pool after layer i
	fc    *nn.Dense
}

func newVGG11(classes int, rng *rand.Rand) Model {
	s := nn.NewStore()
	m := &vgg{base: base{arch: "vgg11-bn", classes: classes, store: s}}
	cfg := []int{64, -1, 128, -1, 256, 256, -1, 512, 512, -1, 512, 512, -1}
	cin := 3
	for _, c := range cfg {
		if c < 0 {
			m.pool[len(m.pool)-1] = true
			continue
		}
		i := len(m.convs)
		m.convs = append(m.convs, nn.NewConv(s, fmt.Sprintf("features.%d.conv", i), cin, c, 3, 1, 1, true, rng))
		m.bns = append(m.bns, nn.NewBatchNorm(s, fmt.Sprintf("features.%d.bn", i), c))
		m.pool = append(m.pool, false)
		cin = c
	}
	m.fc = nn.NewDense(s, "classifier", cin, classes, rng)
	return m
}

func (m *vgg) Forward(tp *nn.Tape, x *nn.Var, train bool) *nn.Var {
	return m.fc.Apply(tp, m.Embed(tp, x, train))
}

// Head implements Embedder.
func (m *vgg) Head() *nn.Dense { return m.fc }

// Embed implements Embedder.
func (m *vgg) Embed(tp *nn.Tape, x *nn.Var, train bool) *nn.Var {
	return nn.GlobalAvgPool(tp, m.FeatureMap(tp, x, train))
}

// FeatureMap implements Embedder.
func (m *vgg) FeatureMap(tp *nn.Tape, x *nn.Var, train bool) *nn.Var {
	y := x
	for i, c := range m.convs {
		y = nn.ConvBatchNorm(tp, y, c, m.bns[i], train, true)
		if m.pool[i] {
			y = nn.MaxPool2D(tp, y, 2, 2, 0)
		}
	}
	mustShape(y, x.Shape()[0], -1, -1, 512)
	return y
}

func init() {
	register(Spec{Name: "vgg11-bn", Description: "VGG-11 with batch norm, global pooling head", InputSize: 32,
		build: func(c int, r *rand.Rand) Model { return newVGG11(c, r) }})
}
