package models

import (
	"testing"

	"move/internal/nn"
	"move/internal/tensor"
)

// Parameter counts of the same architectures in PyTorch (../shared/peer/torch_bench.py and
// torchvision 0.14, 10 classes), printed by summing p.numel() over model.parameters().
var torchParams = map[string]int{
	"resnet20": 272474,
	"wrn16-1":  175066,
	"resnet18": 11181642,
	"resnet34": 21289802,
	"vgg11-bn": 9225984 + 512*10 + 10, // torchvision features + our pooled linear head
}

func TestArchitectures(t *testing.T) {
	for _, name := range Names() {
		t.Run(name, func(t *testing.T) {
			if testing.Short() && (name == "wrn28-10" || name == "resnet34") {
				t.Skip("large model")
			}
			m, err := New(name, 10, 1)
			if err != nil {
				t.Fatal(err)
			}
			if want, ok := torchParams[name]; ok && m.Store().NumParams() != want {
				t.Errorf("%d parameters, PyTorch has %d", m.Store().NumParams(), want)
			}
			size := 32
			if spec, _ := Lookup(name); spec.InputSize == 224 {
				size = 64
			}
			x := nn.Const(tensor.New(2, size, size, 3))
			for i := range x.Data() {
				x.Data()[i] = float32(i%7) / 7
			}
			y := m.Forward(nil, x, false)
			if s := y.Shape(); len(s) != 2 || s[0] != 2 || s[1] != 10 {
				t.Fatalf("logits shape %v", s)
			}
			if y.Value.HasNaN() {
				t.Fatal("NaN in logits")
			}
		})
	}
}

func TestUnknownArchitecture(t *testing.T) {
	if _, err := New("resnet21", 10, 1); err == nil {
		t.Fatal("unknown architecture must be an error")
	}
	if _, err := New("resnet20", 1, 1); err == nil {
		t.Fatal("one class must be an error")
	}
}

// Same seed, same weights.
func TestDeterministicInit(t *testing.T) {
	a, _ := New("resnet20", 10, 42)
	b, _ := New("resnet20", 10, 42)
	c, _ := New("resnet20", 10, 43)
	wa, wb, wc := a.Store().Tensor("stem.weight"), b.Store().Tensor("stem.weight"), c.Store().Tensor("stem.weight")
	for i := range wa.Data {
		if wa.Data[i] != wb.Data[i] {
			t.Fatal("same seed gave different weights")
		}
	}
	if wa.Data[0] == wc.Data[0] && wa.Data[1] == wc.Data[1] {
		t.Fatal("different seeds gave the same weights")
	}
}
