package innocent

import (
	"math"
	"testing"

	"move/internal/nn"
	"move/internal/tensor"
)

func TestPlan(t *testing.T) {
	p := Plan(30, "resnet20", 0, 2)
	if len(p) != 30 {
		t.Fatalf("%d innocents, want 30", len(p))
	}
	kinds := map[string]int{}
	names := map[string]bool{}
	for _, s := range p {
		kinds[s.Kind]++
		if names[s.Name] {
			t.Fatalf("name %s twice", s.Name)
		}
		names[s.Name] = true
		if s.Kind == OtherMark && s.Style < 2 {
			t.Errorf("%s uses style %d, one of the control styles", s.Name, s.Style)
		}
	}
	for _, k := range []string{WellTrained, Seed, OwnerData, Arch, OtherMark, Finetuned, Constant, Noise, Untrained, VictimInit} {
		if kinds[k] == 0 {
			t.Errorf("no innocent of kind %s in 30", k)
		}
	}
	if kinds[Constant] != 1 || kinds[WellTrained] != 1 {
		t.Errorf("%d constant and %d well-trained innocents, want one each", kinds[Constant], kinds[WellTrained])
	}
	// A larger suite extends a smaller one.
	q := Plan(12, "resnet20", 0, 2)
	for i := range q {
		if q[i] != p[i] {
			t.Fatalf("Plan(12)[%d] = %+v, Plan(30)[%d] = %+v", i, q[i], i, p[i])
		}
	}
	archs := map[string]bool{}
	for _, s := range p {
		if s.Kind == Arch {
			archs[s.Arch] = true
		}
	}
	if len(archs) != 3 || archs["resnet20"] {
		t.Errorf("architectures of the arch innocents: %v", archs)
	}
	// The everyday innocents.
	if e := Plan(2, "resnet20", 0, 2); e[0].Kind != WellTrained || e[1].Kind != Constant {
		t.Errorf("everyday innocents: %+v", e)
	}
}

func TestDegenerate(t *testing.T) {
	x := tensor.New(3, 4, 4, 3)
	for i := range x.Data {
		x.Data[i] = float32(i%7) / 7
	}
	c, _ := NewDegenerate(Constant, 10, 1)
	y := c.Forward(nil, nn.Const(x), false).Value
	for _, v := range y.Data {
		if v != 0 {
			t.Fatal("a constant model answers unequal logits")
		}
	}
	n, _ := NewDegenerate(Noise, 10, 1)
	a := n.Forward(nil, nn.Const(x), false).Value
	b := n.Forward(nil, nn.Const(x), false).Value
	for i := range a.Data {
		if a.Data[i] != b.Data[i] {
			t.Fatal("a noise model answers the same image differently")
		}
	}
	if a.Data[0] == a.Data[10] && a.Data[1] == a.Data[11] {
		t.Fatal("a noise model answers two images alike")
	}
	if _, err := NewDegenerate("seed", 10, 1); err == nil {
		t.Fatal("a trained kind made a degenerate model")
	}
}

func TestSummarise(t *testing.T) {
	outs := []Outcome{{P: 0.005, Accused: false}, {P: 0.03}, {P: 0.5}, {P: 0.9}}
	s := Summarise("black", outs)
	if s.Tested != 4 || s.Accused01 != 1 || s.Accused05 != 2 || s.Accused != 0 {
		t.Fatalf("summary %+v", s)
	}
	// No accusation among 4: the Clopper-Pearson upper bound is 1 - 0.025^(1/4).
	if want := 1 - math.Pow(0.025, 0.25); math.Abs(s.Upper95-want) > 1e-9 {
		t.Errorf("upper bound %g, want %g", s.Upper95, want)
	}
	if s.DrawInnocents != 0 || s.DrawRate != 0 {
		t.Errorf("draw figures without draws: %+v", s)
	}
	// Over draws: shares 0.02, 0, 0.05 and an innocent tested once (no draws, not counted).
	outs = []Outcome{{P: 0.2, Draws: 100, DrawsAccused: 2}, {P: 0.6, Draws: 100}, {P: 0.004, Accused: true, Draws: 100, DrawsAccused: 5}, {P: 0.3}}
	s = Summarise("white", outs)
	if s.DrawInnocents != 3 || s.DrawAccusedAny != 2 || math.Abs(s.DrawRate-0.07/3) > 1e-12 || s.DrawWorst != 0.05 {
		t.Fatalf("draws: %+v", s)
	}
	// The t bound: mean + t(0.95, 2)·sd/√3, t(0.95, 2) = 2.919986 (printed tables).
	sd := math.Sqrt((math.Pow(0.02-0.07/3, 2) + math.Pow(0.07/3, 2) + math.Pow(0.05-0.07/3, 2)) / 2)
	if want := 0.07/3 + 2.919986*sd/math.Sqrt(3); math.Abs(s.DrawRateUpper95-want) > 1e-6 {
		t.Errorf("draw rate bound %g, want %g", s.DrawRateUpper95, want)
	}
}
