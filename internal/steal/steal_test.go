package steal

import (
	"context"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"move/internal/classifier"

	"move/internal/data"
	"move/internal/models"
	"move/internal/oip"
	"move/internal/train"
)

// A small world: a victim trained on one half of a generated 4-class set; the thief owns
// the other half; both are judged on a separate test set.
type world struct {
	victim       models.Model
	norm         data.Normalization
	owner, thief *data.Set
	test         *data.Set
}

func recipe(seed uint64, norm data.Normalization, epochs int) train.Config {
	c := train.Default()
	c.Epochs, c.BatchSize, c.LR, c.Seed, c.Norm = epochs, 32, 0.05, seed, norm
	c.Augment = data.Augment{Flip: true}
	return c
}

func newWorld(t *testing.T) *world {
	t.Helper()
	all := data.Synthetic(720, 4, 16, 7)
	first, rest := data.Split(all.Len(), 360, 1)
	w := &world{owner: all.Subset(first), thief: all.Subset(rest[:240]), test: all.Subset(rest[240:])}
	w.norm = data.Stats(w.owner)
	var err error
	if w.victim, err = models.New("resnet20", 4, 1); err != nil {
		t.Fatal(err)
	}
	if _, err := train.Fit(context.Background(), w.victim, w.owner, recipe(1, w.norm, 6), train.Options{}); err != nil {
		t.Fatal(err)
	}
	return w
}

func (w *world) local() classifier.Model { return classifier.Local(w.victim, w.norm, 16) }

func (w *world) wrap(m models.Model) classifier.Model { return classifier.Local(m, w.norm, 16) }

func (w *world) run(t *testing.T, v classifier.Model, cfg Config, set *data.Set) (*Result, float64, float64) {
	t.Helper()
	res, err := Run(context.Background(), v, set, 4, cfg, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	acc, agree, err := Evaluate(w.wrap(res.Model), w.local(), w.test)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%-11s accuracy %.3f agreement %.3f (%d images, %d queries, %.1fs)", cfg.Attack, acc, agree, res.Images, res.Queries, res.Seconds)
	return res, acc, agree
}

func TestAttacks(t *testing.T) {
	if testing.Short() {
		t.Skip("trains several small models")
	}
	w := newWorld(t)
	vacc, _, err := Evaluate(w.wrap(w.victim), w.local(), w.test)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("victim accuracy %.3f", vacc)
	if vacc < 0.7 {
		t.Fatalf("the victim only reaches %.2f: the test world is too hard", vacc)
	}
	// Chance agreement is about 1/4 (an untrained model's, checked here); every stolen model
	// must agree far more.
	const minAgree = 0.6
	untrained, _ := models.New("resnet20", 4, 99)
	if _, agree, err := Evaluate(w.wrap(untrained), w.local(), w.test); err != nil || agree > 0.45 {
		t.Fatalf("an untrained model agrees with the victim on %.2f of the test set (err %v): the thresholds mean nothing", agree, err)
	}
	cases := []struct {
		cfg Config
		set *data.Set
	}{
		{Config{Attack: "copy"}, nil},
		{Config{Attack: "distill", Train: recipe(2, w.norm, 5)}, w.owner},
		{Config{Attack: "finetune", Train: func() train.Config { c := recipe(3, w.norm, 2); c.LR = 0.01; return c }()}, w.thief},
		{Config{Attack: "labelquery", Train: recipe(4, w.norm, 6), Queries: 200}, w.thief},
		{Config{Attack: "logitquery", Train: recipe(5, w.norm, 6)}, w.thief},
		{Config{Attack: "zeroshot", Arch: "resnet20", Train: recipe(6, w.norm, 1), ZeroShot: ZeroShot{Iters: 40, StudentSteps: 3, Batch: 32, ZDim: 32, EvalEvery: 20}}, nil},
	}
	for _, c := range cases {
		res, _, agree := w.run(t, w.local(), c.cfg, c.set)
		if c.cfg.Attack == "copy" {
			if agree != 1 {
				t.Errorf("a direct copy agrees with its victim on %.3f of the test set", agree)
			}
			continue
		}
		want := minAgree
		if c.cfg.Attack == "zeroshot" {
			want = 0.4 // 40 iterations of a data-free attack on a 16x16 world
		}
		if agree < want {
			t.Errorf("%s: agreement %.3f with the victim, want at least %.2f", c.cfg.Attack, agree, want)
		}
		if c.cfg.Attack == "labelquery" && res.Queries != 200 {
			t.Errorf("labelquery spent %d queries, budget 200", res.Queries)
		}
	}
}

// The query attacks work against a victim served over real HTTP, within the query budget.
func TestQueryOverHTTP(t *testing.T) {
	if testing.Short() {
		t.Skip("trains small models")
	}
	w := newWorld(t)
	srv := httptest.NewServer((&oip.Server{Name: "victim", Model: w.local()}).Handler())
	defer srv.Close()
	client, err := oip.Dial(context.Background(), srv.URL+"/v2/models/victim", 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	client.Budget = 150
	remote := classifier.Remote(client, 16)
	res, _, agree := w.run(t, remote, Config{Attack: "logitquery", Arch: "resnet20", Train: recipe(8, w.norm, 6), Queries: 150}, w.thief)
	if client.Queries() != 150 || res.Queries != 150 {
		t.Errorf("spent %d queries over HTTP (attack counted %d), budget 150", client.Queries(), res.Queries)
	}
	if agree < 0.6 {
		t.Errorf("logit-query over HTTP: agreement %.3f", agree)
	}
	// A remote victim's weights are out of reach.
	for _, a := range []string{"copy", "distill", "zeroshot", "finetune"} {
		_, err := Run(context.Background(), remote, w.thief, 4, Config{Attack: a, Arch: "resnet20", Train: recipe(1, w.norm, 1)}, nil, nil)
		if err == nil || !strings.Contains(err.Error(), "weights") {
			t.Errorf("%s against a remote victim: err = %v", a, err)
		}
	}
}

// The independent control never sees the victim, and is trained on the thief's own labels.
func TestIndependentAndChains(t *testing.T) {
	if testing.Short() {
		t.Skip("trains small models")
	}
	w := newWorld(t)
	ind, acc, _ := w.run(t, w.local(), Config{Attack: "independent", Train: recipe(9, w.norm, 6)}, w.thief)
	if acc < 0.6 {
		t.Errorf("independent model accuracy %.3f", acc)
	}
	// Chain: a label-query copy of the independent model (its victim) across architectures.
	v2 := w.wrap(ind.Model)
	res, err := Run(context.Background(), v2, w.thief, 4, Config{Attack: "labelquery", Arch: "wrn16-1", Train: recipe(10, w.norm, 6)}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	_, agree, err := Evaluate(w.wrap(res.Model), v2, w.test)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("chain independent -> labelquery(wrn16-1): agreement %.3f", agree)
	if agree < 0.6 {
		t.Errorf("second stage agreement %.3f", agree)
	}
	if _, err := Run(context.Background(), w.local(), nil, 4, Config{Attack: "copy", Arch: "wrn16-1"}, nil, nil); err == nil {
		t.Error("a direct copy into another architecture was accepted")
	}
	if _, err := Run(context.Background(), w.local(), nil, 4, Config{Attack: "steal-all"}, nil, nil); err == nil {
		t.Error("an unknown attack was accepted")
	}
}
