// Package meta holds MOVE's meta-classifier: a small MLP (or logistic regression) that tells
// features of the victim model (label 1) from those of the benign model (label 0), with the
// standardisation it was trained with, saved to and loaded from one file.
package meta

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"

	"move/internal/modelfile"
	"move/internal/nn"
	"move/internal/tensor"
)

// Info describes a trained meta-classifier; it is stored in the file's metadata.
type Info struct {
	Mode      string `json:"mode"`   // "white" or "black"
	Layout    string `json:"layout"` // white-box layout, or "prob-diff-5aug"
	Dim       int    `json:"dim"`
	Hidden    []int  `json:"hidden"` // empty: logistic regression
	Arch      string `json:"arch,omitempty"`
	Form      string `json:"white_box_form,omitempty"`      // the white-box feature definition (features.Form)
	Signature string `json:"white_box_signature,omitempty"` // the victim's white-box structure (features.Structure)
	Classes   int    `json:"classes"`
	// Contrast is the specificity check the classifier was trained for (verify.Contrast), empty
	// for the paper's classifier; Controls is the number of control styles it contrasts.
	Contrast string `json:"contrast,omitempty"`
	Controls int    `json:"controls,omitempty"`
	// Views is, for an input-gradient family, how many augmented views of each key image
	// (features.View) a verification averages the classifier's probability over (0 or 1: the
	// image alone).
	Views        int      `json:"views,omitempty"`
	TrainIdx     []int    `json:"train_samples"`   // key samples used for training
	HeldOutIdx   []int    `json:"heldout_samples"` // key samples kept for verification
	HeldOutAcc   float64  `json:"heldout_accuracy"`
	TrainAcc     float64  `json:"train_accuracy"`
	VictimHash   string   `json:"victim_sha256"`
	BenignHashes []string `json:"benign_sha256"` // the benign models the classifier was trained against
	// PositiveHashes and NegativeHashes are the owner's further models labelled like the
	// victim and like the benign models (verify.MetaOptions), when there were any.
	PositiveHashes []string `json:"positive_sha256,omitempty"`
	// PositiveP is, for a style-gain-top ranking, each positive's p-value at the gate (its
	// gains where the victim gains most, above the benign models'), and PositivesKept the
	// positives that passed it and ranked (indices into the positives given).
	PositiveP      []float64 `json:"positive_gate_p,omitempty"`
	PositivesKept  []int     `json:"positives_kept,omitempty"`
	NegativeHashes []string  `json:"negative_sha256,omitempty"`
	KeyHash        string    `json:"key_sha256"`
	Seed           uint64    `json:"seed"`
	Version        string    `json:"move_version"`
	Command        string    `json:"command,omitempty"`
	Mean, Scale    []float32 `json:"-"` // standardisation: (x - Mean) * Scale
}

// Classifier is a trained meta-classifier.
type Classifier struct {
	Info   Info
	store  *nn.Store
	layers []*nn.Dense
}

// HiddenFor is the paper's MLP shape (input/8 and input/16 units), capped at 128 and 64 so
// that white-box inputs of hundreds of thousands of signs stay trainable on a CPU (the first
// layer is most of the cost), and at least 16 and 8 so that black-box inputs of a few dozen
// values still get a usable network.
func HiddenFor(dim int) []int {
	return []int{max(16, min(128, dim/8)), max(8, min(64, dim/16))}
}

func build(dim int, hidden []int, seed uint64) (*nn.Store, []*nn.Dense) {
	rng := rand.New(rand.NewPCG(seed, 0x6d657461))
	s := nn.NewStore()
	var layers []*nn.Dense
	in := dim
	for i, h := range hidden {
		layers = append(layers, nn.NewDense(s, fmt.Sprintf("l%d", i), in, h, rng))
		in = h
	}
	layers = append(layers, nn.NewDense(s, fmt.Sprintf("l%d", len(hidden)), in, 2, rng))
	return s, layers
}

func (c *Classifier) forward(tp *nn.Tape, x *tensor.Tensor) *nn.Var {
	h := nn.Const(x)
	for i, l := range c.layers {
		h = l.Apply(tp, h)
		if i < len(c.layers)-1 {
			h = nn.ReLU(tp, h)
		}
	}
	return h
}

func (c *Classifier) standardise(xs [][]float32) *tensor.Tensor {
	d := c.Info.Dim
	t := tensor.New(len(xs), d)
	for i, x := range xs {
		row := t.Data[i*d : (i+1)*d]
		for j, v := range x {
			row[j] = (v - c.Info.Mean[j]) * c.Info.Scale[j]
		}
	}
	return t
}

// Options for Fit.
type Options struct {
	Hidden []int // nil: HiddenFor(dim); empty non-nil: logistic regression
	Epochs int
	LR     float64
	Seed   uint64
}

// Fit trains a classifier on features xs with labels ys (1 victim, 0 benign). The
// standardisation (per-feature mean and inverse standard deviation) is fitted on xs.
func Fit(xs [][]float32, ys []int, info Info, o Options) (*Classifier, error) {
	if len(xs) == 0 || len(xs) != len(ys) {
		return nil, fmt.Errorf("meta-classifier: %d feature vectors for %d labels", len(xs), len(ys))
	}
	d := len(xs[0])
	for _, x := range xs {
		if len(x) != d {
			return nil, errors.New("meta-classifier: feature vectors of different lengths")
		}
	}
	if o.Epochs <= 0 {
		o.Epochs = 30
	}
	if o.Hidden == nil {
		o.Hidden = HiddenFor(d)
	}
	if o.LR <= 0 {
		o.LR = 1e-3
		if len(o.Hidden) == 0 {
			o.LR = 1e-2 // a linear model needs larger steps to reach useful weights
		}
	}
	info.Dim, info.Hidden, info.Seed = d, o.Hidden, o.Seed
	info.Mean, info.Scale = make([]float32, d), make([]float32, d)
	for j := range d {
		var s, q float64
		for _, x := range xs {
			s += float64(x[j])
			q += float64(x[j]) * float64(x[j])
		}
		m := s / float64(len(xs))
		sd := math.Sqrt(math.Max(q/float64(len(xs))-m*m, 0))
		info.Mean[j] = float32(m)
		info.Scale[j] = 1
		if sd > 1e-6 {
			info.Scale[j] = float32(1 / sd)
		}
	}
	c := &Classifier{Info: info}
	c.store, c.layers = build(d, o.Hidden, o.Seed)
	x := c.standardise(xs)
	opt := nn.NewAdam(1e-4)
	tp := nn.NewTape(true)
	rng := rand.New(rand.NewPCG(o.Seed, 1))
	const batch = 64
	for range o.Epochs {
		perm := rng.Perm(len(xs))
		for s := 0; s < len(perm); s += batch {
			idx := perm[s:min(len(perm), s+batch)]
			xb := tensor.New(len(idx), d)
			yb := make([]int, len(idx))
			for i, k := range idx {
				copy(xb.Data[i*d:(i+1)*d], x.Data[k*d:(k+1)*d])
				yb[i] = ys[k]
			}
			c.store.ZeroGrad()
			if err := tp.Backward(nn.CrossEntropy(tp, c.forward(tp, xb), yb)); err != nil {
				return nil, err
			}
			tp.Reset()
			opt.Step(c.store.Params(), float32(o.LR))
		}
	}
	c.Info.TrainAcc = c.Accuracy(xs, ys)
	return c, nil
}

// Record returns a meta file that holds no classifier: for a family that scores suspects
// without one (the input-gradient similarity, whose reference is the victim itself), it keeps
// what a classifier's file keeps for verify (mode, family, the key samples a verification
// draws from, the victim's and the key's hashes, provenance). Its Dim is 0, and Prob refuses.
func Record(info Info) *Classifier {
	info.Dim, info.Hidden, info.Mean, info.Scale = 0, nil, nil, nil
	return &Classifier{Info: info}
}

// Trained reports whether c holds a classifier (false for Record's).
func (c *Classifier) Trained() bool { return c.store != nil }

// Prob returns the probability that each feature vector comes from the victim.
func (c *Classifier) Prob(xs [][]float32) ([]float64, error) {
	if !c.Trained() {
		return nil, fmt.Errorf("the %s meta file holds no classifier: its family scores suspects without one", c.Info.Layout)
	}
	for _, x := range xs {
		if len(x) != c.Info.Dim {
			return nil, fmt.Errorf("feature vector of length %d, the meta-classifier takes %d", len(x), c.Info.Dim)
		}
	}
	logits := c.forward(nil, c.standardise(xs))
	p := nn.SoftmaxProbs(logits.Value)
	out := make([]float64, len(xs))
	for i := range out {
		out[i] = float64(p.Data[2*i+1])
	}
	return out, nil
}

// Accuracy is the fraction of xs classified as ys at threshold 0.5.
func (c *Classifier) Accuracy(xs [][]float32, ys []int) float64 {
	p, err := c.Prob(xs)
	if err != nil || len(p) == 0 {
		return math.NaN()
	}
	hit := 0
	for i, v := range p {
		if (v >= 0.5) == (ys[i] == 1) {
			hit++
		}
	}
	return float64(hit) / float64(len(p))
}

// Save writes the classifier (weights, standardisation, metadata) to path atomically.
func (c *Classifier) Save(path string, overwrite bool) error {
	ts := map[string]*tensor.Tensor{}
	if c.Trained() {
		ts = c.store.Map()
		ts["standardise.mean"] = tensor.From(c.Info.Mean, len(c.Info.Mean))
		ts["standardise.scale"] = tensor.From(c.Info.Scale, len(c.Info.Scale))
	}
	ib, err := json.Marshal(c.Info)
	if err != nil {
		return err
	}
	return modelfile.SaveTensors(path, ts, map[string]string{"move.meta": string(ib)}, overwrite)
}

// Load reads a classifier written by Save.
func Load(path string) (*Classifier, error) {
	ts, meta, err := modelfile.LoadTensors(path)
	if err != nil {
		return nil, fmt.Errorf("reading meta-classifier: %w", err)
	}
	raw, ok := meta["move.meta"]
	if !ok {
		return nil, fmt.Errorf("%s: not a move meta-classifier file", path)
	}
	var info Info
	if err := json.Unmarshal([]byte(raw), &info); err != nil {
		return nil, fmt.Errorf("%s: bad metadata: %w", path, err)
	}
	if info.Dim == 0 && len(ts) == 0 {
		return Record(info), nil
	}
	mean, scale := ts["standardise.mean"], ts["standardise.scale"]
	if mean == nil || scale == nil || mean.Len() != info.Dim || scale.Len() != info.Dim {
		return nil, fmt.Errorf("%s: standardisation missing or of the wrong length", path)
	}
	delete(ts, "standardise.mean")
	delete(ts, "standardise.scale")
	info.Mean, info.Scale = mean.Data, scale.Data
	c := &Classifier{Info: info}
	c.store, c.layers = build(info.Dim, info.Hidden, 0)
	if err := c.store.Load(ts); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return c, nil
}
