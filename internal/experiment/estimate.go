package experiment

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"time"

	"move/internal/models"
	"move/internal/nn"
	"move/internal/style"
	"move/internal/tensor"
)

// Rates are this machine's measured throughputs at an experiment's architecture and image
// size, in images per second.
type Rates struct {
	Train float64 `json:"train"` // training (forward, backward and step) at batch 128
	Infer float64 `json:"infer"` // inference at batch 256
	Style float64 `json:"style"` // style transfer with the profile's settings
	// StylizerSeconds is the time to train one feed-forward stylizer (a profile with
	// FeedForward pays it per style: the owner's and each control's); Style is then the
	// stylizer's images per second.
	StylizerSeconds float64 `json:"stylizer_seconds,omitempty"`
}

// MeasureRates times a few steps of each kind of work (about ten seconds on 2 cores at
// CIFAR size).
func MeasureRates(p Profile, size, classes int) (Rates, error) {
	m, err := models.New(p.Arch, classes, 1)
	if err != nil {
		return Rates{}, err
	}
	rng := rand.New(rand.NewPCG(1, 2))
	batch := func(n int) *tensor.Tensor {
		x := tensor.New(n, size, size, 3)
		for i := range x.Data {
			x.Data[i] = float32(rng.NormFloat64())
		}
		return x
	}
	labels := make([]int, 128)
	tp := nn.NewTape(true)
	opt := &nn.SGD{Momentum: 0.9}
	step := func() {
		x := batch(128)
		m.Store().ZeroGrad()
		loss := nn.CrossEntropy(tp, m.Forward(tp, nn.Const(x), true), labels)
		tp.Backward(loss)
		tp.Reset()
		opt.Step(m.Store().Params(), 0.01)
	}
	var r Rates
	step() // warm-up
	t0 := time.Now()
	const steps = 3
	for range steps {
		step()
	}
	r.Train = float64(steps*128) / time.Since(t0).Seconds()
	x := batch(256)
	models.Eval(m, x)
	t0 = time.Now()
	models.Eval(m, x)
	r.Infer = 256 / time.Since(t0).Seconds()
	st := p.Style
	if !p.FeedForward {
		st.Steps = max(1, st.Steps/8) // an eighth of the optimisation, timed and scaled
	}
	spix := make([]uint8, 64*64*3)
	for i := range spix {
		spix[i] = uint8(rng.IntN(256))
	}
	tr, err := style.New(spix, 64, 64, st)
	if err != nil {
		return r, err
	}
	imgs := make([][]uint8, 16)
	train := make([]style.Image, len(imgs))
	for i := range imgs {
		imgs[i] = make([]uint8, size*size*3)
		for j := range imgs[i] {
			imgs[i][j] = uint8(rng.IntN(256))
		}
		train[i] = style.Image{Pix: imgs[i], H: size, W: size}
	}
	if p.FeedForward {
		// A twentieth of the stylizer's training, timed and scaled, then its forward passes.
		feed := style.DefaultFeed()
		full := feed.Steps
		feed.Steps = max(1, full/20)
		t0 = time.Now()
		sz, err := style.TrainStylizer(tr, train, feed, nil)
		if err != nil {
			return r, err
		}
		r.StylizerSeconds = time.Since(t0).Seconds() * float64(full) / float64(feed.Steps)
		t0 = time.Now()
		sz.Apply(imgs, size, size)
		r.Style = float64(len(imgs)) / time.Since(t0).Seconds()
		return r, nil
	}
	t0 = time.Now()
	tr.Apply(imgs, size, size)
	r.Style = float64(len(imgs)) / (time.Since(t0).Seconds() * float64(p.Style.Steps) / float64(st.Steps))
	return r, nil
}

// Estimate is the wall time a whole experiment of profile p should take on a machine with
// rates r, for an owner's training set of nOwner images, the thief's nThief and nTest test
// images in k classes, with innocents innocent suspects, and what it is made of.
type Estimate struct {
	Total time.Duration            `json:"total"`
	Parts map[string]time.Duration `json:"parts"`
	Rates Rates                    `json:"rates"`
}

// EstimateRun adds up the image passes of every stage of an experiment.
func EstimateRun(p Profile, r Rates, nOwner, nThief, nTest, innocents int, controls int) Estimate {
	sec := func(v float64) time.Duration { return time.Duration(v * float64(time.Second)) }
	owner, thief, test := float64(nOwner), float64(nThief), float64(nTest)
	e := Estimate{Parts: map[string]time.Duration{}, Rates: r}
	ctl := float64(p.ControlSamples)
	if ctl == 0 {
		ctl = p.Rate * owner
	}
	e.Parts["embed"] = sec((p.Rate*owner+float64(controls)*ctl)/r.Style + float64(1+controls)*r.StylizerSeconds)
	e.Parts["victim and benign models"] = sec(float64(1+p.Benign) * float64(p.Epochs) * owner / r.Train)
	zs := float64(p.ZeroShotIters) * 6 * float64(p.ZeroShotBatch) // 5 student steps and a generator step
	attacks := float64(p.DistillEpochs)*owner*1.3 +               // the teacher's forward pass
		float64(p.FinetuneEpochs)*thief*2 + // fine-tuning and the adaptive attack (a share of the owner's data; bounded by this)
		2*float64(p.QueryEpochs)*thief + float64(p.IndependentEpochs)*thief + zs
	e.Parts["attacks"] = sec(attacks/r.Train + (2*thief+8*test)/r.Infer)
	e.Parts["multi-stage thefts"] = sec(3 * float64(p.FinetuneEpochs) * thief / r.Train)
	e.Parts["innocents"] = sec(float64(innocents) * float64(p.Epochs) * (owner + thief) / 2 / r.Train)
	// The meta-classifiers and the verification: per-example gradients of the key samples
	// (about ten times an image's training cost) and the black-box queries.
	e.Parts["meta-classifiers and verification"] = sec(10*float64(p.MetaTrain*(p.Benign+1))/r.Train + float64(20+innocents)*float64(p.MBlack)*18/r.Infer)
	for _, d := range e.Parts {
		e.Total += d
	}
	return e
}

// String is the estimate in one line, its largest parts first.
func (e Estimate) String() string {
	var parts []string
	for _, k := range []string{"victim and benign models", "attacks", "embed", "innocents", "multi-stage thefts", "meta-classifiers and verification"} {
		if d := e.Parts[k]; d >= time.Minute {
			parts = append(parts, fmt.Sprintf("%s %s", k, d.Round(time.Minute)))
		}
	}
	styling := fmt.Sprintf("%.1f img/s styling", e.Rates.Style)
	if e.Rates.StylizerSeconds > 0 {
		styling += fmt.Sprintf(" after %.0f s training each stylizer", e.Rates.StylizerSeconds)
	}
	return fmt.Sprintf("about %s (%s), from this machine's %.0f img/s training, %.0f img/s inference, %s",
		e.Total.Round(time.Minute), strings.Join(parts, ", "), e.Rates.Train, e.Rates.Infer, styling)
}

// estimate prints the estimate of this run once the data is known (stages already done are
// reused and cost nothing).
func (r *runner) estimate() error {
	rates, err := MeasureRates(r.cfg.Profile, r.size, len(r.clean.Classes))
	if err != nil {
		return err
	}
	controls := len(r.cfg.ControlStyles)
	if controls == 0 {
		controls = max(0, r.cfg.Profile.Controls)
	}
	e := EstimateRun(r.cfg.Profile, rates, r.clean.Len(), r.thief.Len(), r.test.Len(), max(r.cfg.Innocents, r.cfg.Profile.Innocents), controls)
	r.res.Estimate = &e
	r.log.Printf("estimated time of the whole experiment: %s; stages already done are reused", e)
	return nil
}
