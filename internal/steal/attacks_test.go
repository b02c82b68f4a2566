package steal

import (
	"slices"
	"strings"
	"testing"

	"move/internal/data"
	"move/internal/train"
)

// The registry is the one description of the attacks: every entry is complete, names are
// unique, and the order is the table's (the experiment's seeds depend on it).
func TestRegistry(t *testing.T) {
	want := []string{"copy", "distill", "zeroshot", "finetune", "labelquery", "logitquery", "adaptive", "independent",
		"prune30", "prune50", "prune70", "prune30ft", "prune50ft", "prune70ft", "fineprune", "quantize8", "augdistill",
		"jpeg50", "blur1", "augavg"}
	if got := strings.Join(Names(), " "); got != strings.Join(want, " ") {
		t.Fatalf("attacks %q, want %q (append new attacks; never reorder)", got, want)
	}
	seen := map[string]bool{}
	for _, a := range Attacks() {
		if seen[a.Name] || a.Label == "" || a.Summary == "" || a.run == nil {
			t.Errorf("attack %+v: duplicate or incomplete", a)
		}
		seen[a.Name] = true
		if i := slices.Index(want, a.Name); a.Washing != (i >= 8) {
			t.Errorf("%s: washing %v", a.Name, a.Washing)
		}
		if a.Serve != "" && !a.KeepsArch {
			t.Errorf("%s serves the victim behind a front but does not keep its network", a.Name)
		}
		if a.KeepsArch && !a.Weights {
			t.Errorf("%s keeps the victim's network but does not need its weights", a.Name)
		}
		if a.Data.trains() != (a.Recipe.Epochs > 0) {
			t.Errorf("%s trains on %s but has recipe %+v", a.Name, a.Data, a.Recipe)
		}
		got, err := Lookup(a.Name)
		if err != nil || got.Name != a.Name {
			t.Errorf("Lookup(%q) = %v, %v", a.Name, got.Name, err)
		}
	}
	if seen["independent"] && func() bool { a, _ := Lookup("independent"); return a.Stolen }() {
		t.Error("the independent control is marked stolen")
	}
	if _, err := Lookup("rob"); err == nil || !strings.Contains(err.Error(), "labelquery") {
		t.Errorf("an unknown attack: %v", err)
	}
	// Attacks returns a copy: callers cannot change the registry.
	Attacks()[0].Name = "changed"
	if Names()[0] != "copy" {
		t.Error("Attacks exposes the registry")
	}
}

func TestRecipeApply(t *testing.T) {
	c := train.Default()
	Recipe{Epochs: 9, LR: 0.01, WeightDecay: 1e-4, BatchSize: 64}.Apply(&c)
	if c.LR != 0.01 || c.WeightDecay != 1e-4 || c.BatchSize != 64 || c.Epochs != train.Default().Epochs {
		t.Fatalf("applied: %+v", c)
	}
}

func TestTrainingSet(t *testing.T) {
	owner, thief := data.Synthetic(200, 4, 8, 1), data.Synthetic(60, 4, 8, 2)
	src := Sources{Owner: owner, Thief: thief, Fraction: 0.1, Seed: 3}
	for _, a := range Attacks() {
		set, err := a.TrainingSet(src)
		if err != nil {
			t.Fatalf("%s: %v", a.Name, err)
		}
		switch a.Data {
		case NoData, Generated:
			if set != nil {
				t.Errorf("%s trains on %d images, want none", a.Name, set.Len())
			}
		case OwnerData:
			if set != owner {
				t.Errorf("%s does not train on the owner's data", a.Name)
			}
		case OwnerFraction:
			if set.Len() != 20 {
				t.Errorf("%s trains on %d images, want 10%% of 200", a.Name, set.Len())
			}
			again, _ := a.TrainingSet(src)
			if string(again.Pixels) != string(set.Pixels) {
				t.Errorf("%s: the fraction is not fixed by the seed", a.Name)
			}
		case ThiefData:
			if set != thief {
				t.Errorf("%s does not train on the thief's data", a.Name)
			}
		}
	}
	// Missing data is an error that says what the attack needs.
	a, _ := Lookup("distill")
	if _, err := a.TrainingSet(Sources{Thief: thief}); err == nil || !strings.Contains(err.Error(), "owner's training data") {
		t.Errorf("distill without the owner's data: %v", err)
	}
	a, _ = Lookup("adaptive")
	if _, err := a.TrainingSet(Sources{Owner: owner, Fraction: 1.5}); err == nil {
		t.Error("a fraction of 1.5 was accepted")
	}
}

func TestSplitSubstitute(t *testing.T) {
	test := data.Synthetic(101, 4, 8, 5)
	thief, eval := SplitSubstitute(test)
	if thief.Len() != 50 || eval.Len() != 51 {
		t.Fatalf("split %d + %d of 101", thief.Len(), eval.Len())
	}
	t2, _ := SplitSubstitute(test)
	if string(t2.Pixels) != string(thief.Pixels) {
		t.Fatal("the split is not fixed")
	}
}

// Every chain has at least two stages, each a registered attack, and a unique name.
func TestChains(t *testing.T) {
	names := map[string]bool{}
	for _, c := range Chains() {
		if len(c.Stages) < 2 || c.Label == "" || names[c.Name] {
			t.Errorf("chain %+v", c)
		}
		names[c.Name] = true
		for _, st := range c.Stages {
			if _, err := Lookup(st); err != nil {
				t.Errorf("chain %s: %v", c.Name, err)
			}
		}
		if _, err := Lookup(c.Name); err == nil {
			t.Errorf("chain %s has an attack's name", c.Name)
		}
	}
	Chains()[0].Stages[0] = "changed"
	if Chains()[0].Stages[0] != "distill" {
		t.Error("Chains exposes the table")
	}
}
