// Package datasetinference is the dataset-inference baseline MOVE is compared with (Maini et
// al., ICLR 2021): a model trained on the owner's private data sits farther from its decision
// boundaries on those images than on public ones, and so does any model that learned from it
// — a copy, or a student of it. The owner measures each image's distances to the boundary,
// learns on the victim a "confidence regressor" that tells private images from public ones by
// those distances, and tests a suspect: on private and public images it has not seen, are
// the regressor's scores higher for the private ones (one-tailed t-test)?
//
// Distances come in the two settings of Maini et al.: black-box (BlindWalk, their "blind
// walk": from the image, equal steps along a random direction until the predicted class
// changes, for several directions), which needs only answers, and white-box (MinGD: the
// smallest L2 and Linf perturbations found by gradient descent in input space that make the
// model answer each other class), which needs the suspect's weights. Dataset inference
// protects the data rather than the model: a model trained independently on the owner's own
// data is flagged too, by design. It reads the gap between how a model treats its training
// images and unseen ones, so it needs a victim that generalises imperfectly.
package datasetinference

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"

	"move/internal/classifier"
	"move/internal/data"
	"move/internal/meta"
	"move/internal/stats"
)

// Features maps images (RGB, h x w) to one distance vector each: a model's view of how far
// each image lies from its decision boundaries.
type Features func(imgs [][]uint8, h, w int) ([][]float32, error)

// BlindWalk is the black-box distance of p (Distances with o).
func BlindWalk(p classifier.Prober, o Options) Features {
	return func(imgs [][]uint8, h, w int) ([][]float32, error) { return Distances(p, imgs, h, w, o) }
}

// Options configure the blind walk and the test.
type Options struct {
	Directions int     // random directions per image (default 10)
	Steps      int     // the longest walk, in steps (default 30)
	StepL2     float64 // each step's L2 length in [0, 1] pixel space (default 0.5)
	Seed       uint64
}

func (o *Options) defaults() {
	if o.Directions == 0 {
		o.Directions = 10
	}
	if o.Steps == 0 {
		o.Steps = 30
	}
	if o.StepL2 == 0 {
		o.StepL2 = 0.5
	}
}

// walkBatch is how many steps of a blind walk are asked at once: a walk stops at the batch
// in which the class changes.
const walkBatch = 8

// Distances returns, for each image, its blind-walk distances along o.Directions random
// directions (Gaussian, scaled to StepL2 per step), sorted from the shortest: the L2 length
// walked when p's top class first differs from its class at the image (Steps+1 steps when it
// never does). Directions are drawn per image from o.Seed and the image's index, so two
// models are walked along the same directions.
func Distances(p classifier.Prober, imgs [][]uint8, h, w int, o Options) ([][]float32, error) {
	o.defaults()
	if len(imgs) == 0 {
		return nil, errors.New("no images to walk from")
	}
	base, err := p.Probs(imgs, h, w)
	if err != nil {
		return nil, err
	}
	if len(base) != len(imgs) {
		return nil, fmt.Errorf("%d answers for %d images", len(base), len(imgs))
	}
	out := make([][]float32, len(imgs))
	d := h * w * 3
	for i, img := range imgs {
		if len(img) != d {
			return nil, fmt.Errorf("an image has %d bytes, %dx%d RGB needs %d", len(img), h, w, d)
		}
		start := classifier.Top1(base[i])
		rng := rand.New(rand.NewPCG(o.Seed, uint64(i)+1))
		dirs := make([][]float64, o.Directions)
		for k := range dirs {
			dir := make([]float64, d)
			var norm float64
			for j := range dir {
				dir[j] = rng.NormFloat64()
				norm += dir[j] * dir[j]
			}
			scale := o.StepL2 / math.Sqrt(norm)
			for j := range dir {
				dir[j] *= scale
			}
			dirs[k] = dir
		}
		// The walks go out walkBatch steps at a time, all directions together, each walk
		// stopping at the batch in which the class changes.
		steps := make([]int, o.Directions)
		for k := range steps {
			steps[k] = o.Steps + 1
		}
		for lo := 0; lo < o.Steps; lo += walkBatch {
			var walk [][]uint8
			var who []int // direction of each image of walk
			for k, dir := range dirs {
				if steps[k] <= o.Steps {
					continue
				}
				for s := lo; s < min(lo+walkBatch, o.Steps); s++ {
					q := make([]uint8, d)
					for j, v := range img {
						x := float64(v) + 255*float64(s+1)*dir[j]
						q[j] = uint8(math.Round(math.Min(255, math.Max(0, x))))
					}
					walk = append(walk, q)
					who = append(who, k)
				}
			}
			if len(walk) == 0 {
				break
			}
			probs, err := p.Probs(walk, h, w)
			if err != nil {
				return nil, err
			}
			if len(probs) != len(walk) {
				return nil, fmt.Errorf("%d answers for %d images", len(probs), len(walk))
			}
			for q, pr := range probs {
				k := who[q]
				if steps[k] > o.Steps && classifier.Top1(pr) != start {
					steps[k] = lo + q%min(walkBatch, o.Steps-lo) + 1
				}
			}
		}
		dist := make([]float32, o.Directions)
		for k, n := range steps {
			dist[k] = float32(float64(n) * o.StepL2)
		}
		slices.Sort(dist)
		out[i] = dist
	}
	return out, nil
}

// Regressor is the owner's confidence regressor: a logistic regression on distances,
// fitted on the victim, that scores how much an image looks like training data.
type Regressor struct {
	c *meta.Classifier
}

// FitRegressor learns on the victim's distances to tell private (training) images from
// public ones, and returns its accuracy on those images.
func FitRegressor(victim Features, private, public [][]uint8, h, w int, seed uint64) (*Regressor, float64, error) {
	dp, err := victim(private, h, w)
	if err != nil {
		return nil, 0, fmt.Errorf("distances of the private images: %w", err)
	}
	dq, err := victim(public, h, w)
	if err != nil {
		return nil, 0, fmt.Errorf("distances of the public images: %w", err)
	}
	xs := append(append([][]float32(nil), dp...), dq...)
	ys := make([]int, len(xs))
	for i := range dp {
		ys[i] = 1
	}
	c, err := meta.Fit(xs, ys, meta.Info{Mode: "dataset-inference", Layout: "distances"}, meta.Options{Hidden: []int{}, Seed: seed})
	if err != nil {
		return nil, 0, err
	}
	return &Regressor{c: c}, c.Accuracy(xs, ys), nil
}

// Result is a dataset-inference test of one suspect.
type Result struct {
	M       int          `json:"m"`
	Test    stats.Result `json:"test"`
	P       float64      `json:"p_value"`
	DeltaMu float64      `json:"delta_mu"` // mean score on private images minus on public ones
	Stolen  bool         `json:"stolen"`
}

// Verify scores the suspect's distances on private and public images the regressor never
// saw and tests H1: the private images' mean score exceeds the public ones' by more than
// margin (Welch's one-tailed t-test).
func (r *Regressor) Verify(suspect Features, private, public [][]uint8, h, w int, alpha, margin float64) (*Result, error) {
	if len(private) < 2 || len(public) < 2 {
		return nil, errors.New("dataset inference needs at least 2 private and 2 public images")
	}
	score := func(imgs [][]uint8) ([]float64, error) {
		d, err := suspect(imgs, h, w)
		if err != nil {
			return nil, err
		}
		return r.c.Prob(d)
	}
	sp, err := score(private)
	if err != nil {
		return nil, fmt.Errorf("the suspect, on private images: %w", err)
	}
	sq, err := score(public)
	if err != nil {
		return nil, fmt.Errorf("the suspect, on public images: %w", err)
	}
	shifted := make([]float64, len(sp))
	for i, v := range sp {
		shifted[i] = v - margin
	}
	t, err := stats.WelchT(shifted, sq, stats.Greater)
	if err != nil {
		return nil, err
	}
	res := &Result{M: len(sp), Test: t, P: t.P, DeltaMu: t.DeltaMu + margin}
	res.Stolen = res.P < alpha
	return res, nil
}

// Split picks, from set, n images for the regressor and m for verification, disjoint, with
// seed: the owner's private images or the public ones.
func Split(set *data.Set, n, m int, seed uint64) (fit, test [][]uint8, err error) {
	if n+m > set.Len() {
		return nil, nil, fmt.Errorf("%d + %d images asked of %d", n, m, set.Len())
	}
	idx := rand.New(rand.NewPCG(seed, 0x6469)).Perm(set.Len())
	for _, i := range idx[:n] {
		fit = append(fit, set.Image(i))
	}
	for _, i := range idx[n : n+m] {
		test = append(test, set.Image(i))
	}
	return fit, test, nil
}
