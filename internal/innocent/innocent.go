// Package innocent describes the models that ownership verification must clear — other
// seeds, other architectures, models trained on the owner's own clean data, models carrying
// someone else's watermark, models fine-tuned from an unrelated model, models trained far
// longer than the victim, and degenerate ones (a constant answer, random answers, an untrained
// network) — and summarises how often a test accuses them: the false-accusation rate with its
// exact Clopper-Pearson bound and the uniformity of the innocents' p-values.
//
// An accusation of theft is only as good as the measured rate at which innocents are
// accused; one independent model per experiment cannot measure it.
package innocent

import (
	"fmt"
	"hash/fnv"
	"math"
	"math/rand/v2"

	"move/internal/models"
	"move/internal/nn"
	"move/internal/stats"
	"move/internal/tensor"
)

// Kinds of innocent suspects.
const (
	WellTrained = "well-trained"    // all the clean data (the owner's and the thief's), the victim's recipe: better than the victim
	Seed        = "seed"            // the victim's recipe on the thief's data, another seed
	OwnerData   = "owner-data"      // the owner's own clean training set, no style: same data, no watermark
	Arch        = "arch"            // another architecture on the thief's data
	OtherMark   = "other-watermark" // the owner's recipe with another style image: someone else's MOVE watermark
	Finetuned   = "finetuned"       // a model trained on the thief's data, fine-tuned on the owner's clean data
	Constant    = "constant"        // a served model that answers the same probabilities for every image
	Noise       = "noise"           // a served model that answers at random
	Untrained   = "untrained"       // a freshly initialised network
	External    = "external"        // a model trained outside move (an ONNX file)
	VictimInit  = "victim-init"     // the victim's architecture and initial weights, trained on the owner's clean data
	Student     = "student"         // a theft's recipe applied to a model made without the victim
)

// Describe says what each kind is.
var Describe = map[string]string{
	WellTrained: "trained on all the clean data (the owner's and the thief's images) with the victim's recipe: more accurate than the victim",
	Seed:        "the victim's architecture trained on the thief's data from another seed",
	OwnerData:   "trained on the owner's own clean training images (no style): the same data, no watermark",
	Arch:        "another architecture trained on the thief's data",
	OtherMark:   "the owner's recipe with another style image: a model carrying someone else's MOVE watermark",
	Finetuned:   "trained on the thief's data, then fine-tuned on the owner's clean images",
	Constant:    "a served model that answers 0.1 (uniform) for every class of every image",
	Noise:       "a served model whose answers are random (a fixed pseudo-random function of the image)",
	Untrained:   "the victim's architecture, freshly initialised and never trained",
	External:    "a model trained outside move, given as an ONNX file",
	VictimInit:  "the victim's initial weights (as when both start from one public checkpoint), trained on the owner's clean images without the style",
	Student:     "a student of a model made without the victim (the independent control), by a theft's recipe (distillation, zero-shot, label- or logit-query): a student, of someone else's model",
}

// Spec is one innocent suspect to make.
type Spec struct {
	Name  string `json:"name"`
	Kind  string `json:"kind"`
	Arch  string `json:"arch,omitempty"`
	Seed  uint64 `json:"seed"`
	Style int    `json:"style,omitempty"` // OtherMark: procedural style index (style.Control)
}

// otherArchs are the architectures Arch innocents rotate through.
var otherArchs = []string{"wrn16-1", "vgg11-bn", "resnet32"}

// order is how kinds are drawn: the first two are the everyday profiles' innocents, and any
// plan of 19 or more holds every kind (12 or more every kind but VictimInit).
var order = []string{WellTrained, Constant, Seed, OwnerData, Arch, OtherMark, Finetuned, Noise, Untrained, Arch, Arch, Seed,
	OwnerData, OtherMark, Finetuned, Seed, Arch, OwnerData, VictimInit}

// Plan returns n innocent suspects for a victim of architecture arch. Names are unique and
// stable: Plan(n) is a prefix of Plan(n+1), so a larger suite resumes a smaller one.
// OtherMark innocents use procedural styles from firstStyle on (styles other than the
// controls'), two distinct ones in turn.
func Plan(n int, arch string, seed uint64, firstStyle int) []Spec {
	var out []Spec
	count := map[string]int{}
	archs := 0
	for i := range n {
		k := order[i%len(order)]
		if i >= len(order) && (k == Constant || k == WellTrained) {
			k = Seed // one of each suffices; later rounds add trained models
		}
		count[k]++
		s := Spec{Kind: k, Arch: arch, Seed: seed + 1000 + uint64(i)*7919}
		switch k {
		case Arch:
			s.Arch = otherArchs[archs%len(otherArchs)]
			archs++
		case OtherMark:
			s.Style = firstStyle + (count[k]-1)%2
		}
		s.Name = fmt.Sprintf("%s-%d", k, count[k])
		if k == Arch {
			s.Name = fmt.Sprintf("%s-%d", s.Arch, count[k])
		}
		out = append(out, s)
	}
	return out
}

// Degenerate is a "model" whose answers do not depend on learning: Constant answers equal
// logits (uniform probabilities) for every image; Noise answers pseudo-random logits that
// are a fixed function of the image (the same image always gets the same answer). It has no
// weights; serve it to verify it black-box.
type Degenerate struct {
	Kind    string // Constant or Noise
	K       int    // classes
	Seed    uint64
	InSize  int
	emptyNN *nn.Store
}

// NewDegenerate returns a Constant or Noise model.
func NewDegenerate(kind string, classes int, seed uint64) (*Degenerate, error) {
	if kind != Constant && kind != Noise {
		return nil, fmt.Errorf("no degenerate model of kind %q (constant or noise)", kind)
	}
	return &Degenerate{Kind: kind, K: classes, Seed: seed, emptyNN: nn.NewStore()}, nil
}

// Forward implements models.Model.
func (d *Degenerate) Forward(_ *nn.Tape, x *nn.Var, _ bool) *nn.Var {
	n := x.Value.Shape[0]
	per := x.Value.Len() / max(1, n)
	out := tensor.New(n, d.K)
	if d.Kind == Noise {
		for i := range n {
			h := fnv.New64a()
			for _, v := range x.Value.Data[i*per : (i+1)*per] {
				b := math.Float32bits(v)
				h.Write([]byte{byte(b), byte(b >> 8), byte(b >> 16), byte(b >> 24)})
			}
			rng := rand.New(rand.NewPCG(d.Seed, h.Sum64()))
			for j := range d.K {
				out.Data[i*d.K+j] = float32(3 * rng.NormFloat64())
			}
		}
	}
	return nn.Const(out)
}

// Store implements models.Model: no weights.
func (d *Degenerate) Store() *nn.Store { return d.emptyNN }

// Arch implements models.Model.
func (d *Degenerate) Arch() string { return d.Kind }

// Classes implements models.Model.
func (d *Degenerate) Classes() int { return d.K }

var _ models.Model = (*Degenerate)(nil)

// Outcome is one innocent's verdict in one mode.
type Outcome struct {
	P       float64
	Accused bool
	// Draws is how many draws of the key images the test was repeated on (0: one, the
	// verdict's), DrawsAccused in how many of them the innocent was accused.
	Draws, DrawsAccused int
}

// Summary is how a test treated a suite of innocents in one mode.
type Summary struct {
	Mode      string           `json:"mode"`
	Tested    int              `json:"tested"` // innocents the mode could test
	Accused01 int              `json:"accused_at_0.01"`
	Accused05 int              `json:"accused_at_0.05"`
	Accused   int              `json:"accused"`       // accused by the verdict (alpha, margin, working-classifier rule)
	Upper95   float64          `json:"rate_upper_95"` // Clopper-Pearson upper bound on the false-accusation rate (by the verdict)
	Uniform   stats.Uniformity `json:"uniformity"`    // the innocents' p-values against the uniform distribution
	// Over draws of the key images (Outcome.Draws), the innocents being the unit: how many
	// were tested so, how many were accused in at least one draw, the mean over innocents of
	// the share of draws that accused them (the rate at which an innocent is accused by one
	// verification, images drawn at random), its one-sided 95% upper bound (Student's t over
	// the innocents' shares), and the highest share of one innocent.
	DrawInnocents   int     `json:"draw_innocents,omitempty"`
	DrawAccusedAny  int     `json:"draw_accused_any,omitempty"`
	DrawRate        float64 `json:"draw_rate,omitempty"`
	DrawRateUpper95 float64 `json:"draw_rate_upper_95,omitempty"`
	DrawWorst       float64 `json:"draw_worst,omitempty"`
}

// Summarise counts false accusations among outcomes.
func Summarise(mode string, outs []Outcome) Summary {
	s := Summary{Mode: mode, Tested: len(outs)}
	var ps []float64
	for _, o := range outs {
		ps = append(ps, o.P)
		if o.P < 0.01 {
			s.Accused01++
		}
		if o.P < 0.05 {
			s.Accused05++
		}
		if o.Accused {
			s.Accused++
		}
	}
	_, s.Upper95 = stats.ClopperPearson(s.Accused, s.Tested, 0.05)
	s.Uniform = stats.UniformKS(ps)
	var shares []float64
	for _, o := range outs {
		if o.Draws > 0 {
			r := float64(o.DrawsAccused) / float64(o.Draws)
			shares = append(shares, r)
			s.DrawWorst = max(s.DrawWorst, r)
			if o.DrawsAccused > 0 {
				s.DrawAccusedAny++
			}
		}
	}
	if s.DrawInnocents = len(shares); s.DrawInnocents > 0 {
		s.DrawRate, s.DrawRateUpper95 = stats.MeanUpper(shares, 0.95)
	}
	return s
}
