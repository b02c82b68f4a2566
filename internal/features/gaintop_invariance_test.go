package features_test

import (
	"math"
	"math/rand/v2"
	"testing"

	"move/internal/classifier"
	"move/internal/data"
	"move/internal/features"
	"move/internal/models"
	"move/internal/verify"
	"move/internal/watermark"
)

// style-gain-top reads answers only, so a model with its hidden units permuted (the same
// function, its weights in another order) gets the same ranking and the same test, to float
// tolerance, as a victim, as a benign model and as a suspect.
func TestGainTopIsPermutationInvariant(t *testing.T) {
	net := func(seed uint64, perm []int) classifier.Model {
		m, err := models.New("vgg11-bn", 3, seed)
		if err != nil {
			t.Fatal(err)
		}
		features.RandomBN(m, seed+4)
		if perm != nil {
			features.PermuteChannels(m, perm)
		}
		return classifier.Local(m, data.CIFAR10Norm, 0)
	}
	perm := rand.New(rand.NewPCG(9, 9)).Perm(64)
	victim, victimP := net(7, nil), net(7, perm)
	benign, ref := net(8, nil), net(9, nil)
	r := rand.New(rand.NewPCG(3, 4))
	img := func() []uint8 {
		b := make([]uint8, 16*16*3)
		for i := range b {
			b[i] = uint8(r.IntN(256))
		}
		return b
	}
	pairs := make([]watermark.Pair, 24)
	for i := range pairs {
		pairs[i] = watermark.Pair{Orig: img(), Styled: img(), Controls: [][]uint8{img(), img()}, H: 16, W: 16, Label: i % 3}
	}
	a, err := verify.GainTopRecord(verify.GainTopRankers{Victim: victim, Benign: []classifier.Model{benign}}, pairs, 0)
	if err != nil {
		t.Fatal(err)
	}
	b, err := verify.GainTopRecord(verify.GainTopRankers{Victim: victimP, Benign: []classifier.Model{net(8, perm)}}, pairs, 0)
	if err != nil {
		t.Fatal(err)
	}
	for i := range a.Info.HeldOutIdx {
		if a.Info.HeldOutIdx[i] != b.Info.HeldOutIdx[i] {
			t.Fatalf("rankings differ at %d: %v and %v", i, a.Info.HeldOutIdx, b.Info.HeldOutIdx)
		}
	}
	x, err := verify.GainTop(a, victim, ref, pairs, verify.Options{M: 10})
	if err != nil {
		t.Fatal(err)
	}
	y, err := verify.GainTop(a, victimP, ref, pairs, verify.Options{M: 10})
	if err != nil {
		t.Fatal(err)
	}
	if math.Abs(x.DeltaMu-y.DeltaMu) > 1e-5 || math.Abs(x.P-y.P) > 1e-4*math.Max(x.P, 1e-12)+1e-9 {
		t.Errorf("the victim: delta-mu %g p %g; permuted: delta-mu %g p %g", x.DeltaMu, x.P, y.DeltaMu, y.P)
	}
	if x.DeltaMu == 0 {
		t.Error("the test read no difference at all: it cannot tell anything apart")
	}
}
