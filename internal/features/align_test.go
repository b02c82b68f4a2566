package features

import (
	"math"
	"math/rand/v2"
	"testing"

	"move/internal/models"
	"move/internal/nn"
	"move/internal/tensor"
)

func TestAssignMatchesBruteForce(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 1))
	for trial := range 200 {
		n := 1 + trial%6
		cost := make([]float64, n*n)
		for i := range cost {
			cost[i] = math.Round(r.Float64()*20) - 10 // ties included
		}
		p := assign(cost, n)
		seen := make([]bool, n)
		got := 0.0
		for i, j := range p {
			if seen[j] {
				t.Fatalf("n=%d: %v is not a permutation", n, p)
			}
			seen[j] = true
			got += cost[i*n+j]
		}
		best := math.Inf(1)
		permute(make([]int, 0, n), make([]bool, n), func(q []int) {
			s := 0.0
			for i, j := range q {
				s += cost[i*n+j]
			}
			best = math.Min(best, s)
		})
		if got != best {
			t.Fatalf("n=%d: assignment costs %g, the optimum %g", n, got, best)
		}
	}
}

func permute(pre []int, used []bool, f func([]int)) {
	if len(pre) == len(used) {
		f(pre)
		return
	}
	for j := range used {
		if !used[j] {
			used[j] = true
			permute(append(pre, j), used, f)
			used[j] = false
		}
	}
}

// shuffleUnits permutes m's hidden units at random, group by group as the channel analysis
// finds them, weights and batch-norm statistics alike; m computes the same function after.
func shuffleUnits(t *testing.T, m models.Model, x *tensor.Tensor, seed uint64) {
	nodes, in, y, err := trace(m, x)
	if err != nil {
		t.Fatal(err)
	}
	s := analyse(nodes, in, y)
	r := rand.New(rand.NewPCG(seed, 3))
	perms := map[int][]int{}
	group := func(sp int) []int {
		g := s.find(sp)
		if s.fixed[g] {
			return nil
		}
		if perms[g] == nil {
			perms[g] = r.Perm(s.size[g])
		}
		return perms[g]
	}
	apply := func(data []float32, dims []int, pp [][]int) {
		var idx []int
		idx = appendPermuted(idx, 0, dims, pp)
		old := append([]float32(nil), data...)
		for j, src := range idx {
			data[j] = old[src]
		}
	}
	for p, axes := range s.axes {
		pp := make([][]int, len(p.Shape()))
		for a, sp := range axes {
			if sp >= 0 {
				pp[a] = group(sp)
			}
		}
		apply(p.Value.Data, p.Shape(), pp)
	}
	for _, n := range nodes {
		if n.Op == "BatchNormalization" {
			pp := [][]int{group(s.space(n.In[0]))}
			apply(n.BN.Mean.Data, n.BN.Mean.Shape, pp)
			apply(n.BN.Var.Data, n.BN.Var.Shape, pp)
		}
	}
	if len(perms) == 0 {
		t.Fatal("no group of units to permute")
	}
}

func logits(m models.Model, x *tensor.Tensor) []float32 {
	tp := nn.NewTape(false)
	return append([]float32(nil), m.Forward(tp, nn.Const(x), false).Data()...)
}

// A copy of a model with its hidden units shuffled computes the same function; aligning it to
// the original finds every unit again, and its aligned white-box vectors are the original's.
func TestAlignRecoversShuffledUnits(t *testing.T) {
	for _, arch := range []string{"resnet20", "wrn16-1", "vgg11-bn"} {
		t.Run(arch, func(t *testing.T) {
			size := 16
			if arch == "vgg11-bn" {
				size = 32
			}
			m, err := models.New(arch, 4, 7)
			if err != nil {
				t.Fatal(err)
			}
			randomBN(m, 5)
			r := rand.New(rand.NewPCG(2, 2))
			n := 48
			if arch == "vgg11-bn" {
				n = 16
			}
			x := tensor.New(n, size, size, 3)
			for i := range x.Data {
				x.Data[i] = float32(r.NormFloat64())
			}
			shuffled, _ := models.New(arch, 4, 7)
			randomBN(shuffled, 5)
			shuffleUnits(t, shuffled, x, 9)
			want, got := logits(m, x), logits(shuffled, x)
			for i := range want {
				if d := math.Abs(float64(want[i] - got[i])); d > 1e-3*(1+math.Abs(float64(want[i]))) {
					t.Fatalf("shuffling changed logit %d: %g -> %g", i, want[i], got[i])
				}
			}
			a, err := Align(m, shuffled, x, x)
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("%d groups, %d units, %d moved, mean correlation %.4f", a.Groups, a.Units, a.Moved, a.MeanCorr)
			if a.Moved == 0 || a.MeanCorr < 0.999 {
				t.Errorf("the shuffled units were not matched: %d moved, mean correlation %g", a.Moved, a.MeanCorr)
			}
			st, _ := Describe(m, size)
			labels := []int{0, 1, 2, 3}
			xs := tensor.From(x.Data[:4*size*size*3], 4, size, size, 3)
			for _, layout := range []string{Full, Compressed} {
				v0, err := WhiteBox(m, xs, labels, layout)
				if err != nil {
					t.Fatal(err)
				}
				v1, _ := WhiteBox(shuffled, xs, labels, layout)
				before := differ(v0, v1)
				if err := a.Apply(st, layout, v1); err != nil {
					t.Fatal(err)
				}
				// A gradient near zero may change sign with the order of a sum: allow 1e-5.
				if d := differ(v0, v1); float64(d) > 1e-5*float64(len(v0)*len(v0[0])) || before < len(v0)*len(v0[0])/10 {
					t.Errorf("%s: %d coordinates differ before aligning, %d after (want many, then none)", layout, before, d)
				}
			}
		})
	}
}

func differ(a, b [][]float32) int {
	n := 0
	for i := range a {
		for j := range a[i] {
			if a[i][j] != b[i][j] {
				n++
			}
		}
	}
	return n
}
