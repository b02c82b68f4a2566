package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"slices"
	"strings"

	"move/internal/atomicfile"
	"move/internal/buildinfo"
	"move/internal/classifier"
	"move/internal/features"
	"move/internal/meta"
	"move/internal/modelfile"
	"move/internal/verify"
	"move/internal/watermark"
)

// metaOptions are move meta's flags.
type metaOptions struct {
	mode, victim, key, out, layout, hidden string
	positive, negative                     []string
	benign                                 []string
	heldOut                                float64
	maxTrain                               int
	noControls, force, jsonOut             bool
	gainAugs                               int
	seed                                   uint64
	onnx                                   modelfile.ONNXDefaults
	command                                string
}

func init() {
	commands["meta"] = &command{
		summary: "train the ownership meta-classifier (white- or black-box)",
		usage:   "--mode white|black --victim V --benign B --key KEY --out META [flags]",
		help: `Trains the meta-classifier that tells the victim's features (label 1) from the benign
model's (label 0) on the transformed images of the watermark key. White-box features are the
signs of the loss gradient with respect to every weight of the model in its batch-norm-folded
form, the form PyTorch exports by default, so that an ONNX export verifies like the model it
came from; black-box features are the probability differences over five augmentations.
--features weights (the default, as the paper's published code) sums each kernel's signs
over its spatial taps and leaves out 1-D weights: on CIFAR-10 (quick profile) a resnet20's
271,690 signs become 32,944, the classifier's held-out accuracy rises from 0.996 to 1.000
and the direct copy's p-value falls from 0.068 to 0.001 (the full vector lets the classifier
fit noise of the two benign models it sees); --features weights-full keeps every sign, and
weights-raw keeps the gradients instead of their signs (an ablation). Models may be move
model files or ONNX files; white-box models must share one architecture (the weights must
line up). (--layout is the older name: compressed, full, compressed-raw, input-grad,
input-sign.)

--features input-grad and input-sign use other white-box features, experimental: the
gradient of the loss with respect to each transformed image itself (input-grad: divided by
its root mean square; input-sign: its signs), pooled over an 8x8 grid per channel (192
values). They depend only on the function a model computes, not on how its units are
arranged, so a suspect of another architecture can be read and students are not invisible
by construction (README: "What each mode detects").

--features input-grad-sim trains nothing: move verify scores each key image by the cosine
between the suspect's input gradient and the victim's at that image (full resolution, mean
over 8 shifted and mirrored views), paired against the reference's. META records the family,
the victim's and the key's SHA-256 and the key samples a verification draws from (all of
them: nothing is spent on training); give move verify the victim with --victim. No --benign:
the victim is the reference the scores are taken against. On CIFAR-10 it flags the copy,
fine-tuning, label- and logit-query students and a wrn16-1 student of a resnet20 victim, and
misses distillation and data-free distillation (README: "What each mode detects").

--features style-gain-top trains nothing either: it needs a key with control styles, ranks
every key image by how much more the victim gains from the owner's style than the --benign
models do (a model's gain: its true-class probability on the owner-styled image minus its mean
over the control-styled ones) and records the ranking; move verify then runs the style-gain
test of the black-box verdict on the top m (10) images only (at most a third of them, rounded
up, of one class), the suspect's gains against the reference's. It reads answers, so a
suspect of any architecture, or a served one. The reference must not be one of the --benign
models that ranked the images.
--positive and --negative join its ranking: the score of an image is the mean gain of the
victim and the positives (the owner's students of the victim) beyond the mean gain of the
benign models and the negatives, so that the top images are those where what the victim
learned of the style survives distillation. Measured on CIFAR-10 quick with the owner's two
students of the victim (README; stop 35, the 120-iteration zero-shot thief): zero-shot 0.015 (0.045 without), the distillation-then-
fine-tuning and zero-shot-then-fine-tuning chains 0.0012 and 0.006 (0.062, 0.42), but it
also accuses a student of an unrelated model made by the same recipe (a distilled student of
the independent control, p = 0.0063; with the victim alone in the ranking 0.21): the ranking
learns the students' recipe, not only the victim. Do not use it for a verdict without the
experiment's --innocent-students on the same data. A positive ranks only if it inherits the victim's gain: its gains on the victim's
own top 100 images must exceed a benign model's that did not choose those images (each benign
model held out in turn; paired t-test, p < 0.01 every time; printed, and recorded in META);
the others are dropped, and with a single benign model all are. On the Fashion-MNIST demo no student passes, and
ranked with them anyway (and a benign model from the victim's initial weights) the test had
missed the copy and accused an innocent (p = 0.0041; README). Benign models or negatives more than 15 points less accurate than the victim on the
key's originals are refused: weak models rank the images where any trained model gains.

--positive and --negative add the owner's further models to the two classes: students the
owner distilled from the victim (labelled like it) and from benign models (labelled like
them), so that being a student separates nothing and only what a student inherits from the
victim does. Their SHA-256 are recorded in META.

The key's samples are split (--held-out, default half) into samples that train the classifier
and samples kept for verification; the split is recorded in META so that verification never
uses an image the classifier was trained on. The classifier's held-out accuracy is reported.

When the key has control styles, only samples with control versions are used, and the
victim's and the benign models' features on the control styles are negatives as well: the
classifier learns what is specific to the victim's answer to the owner's style, not a
general steadiness under restyling that any confident model has (--no-controls: the paper's
classifier).

EXIT STATUS
  0 on success, 1 when the classifier's held-out accuracy is at chance level (below 0.6; it
  is written but cannot support a verdict), 2 on error, 3 on an internal error (a bug).`,
		run: func(ctx context.Context, args []string, stdout, stderr io.Writer) error {
			var o metaOptions
			fs := newFlags("meta", stderr)
			onnxOpts := onnxFlags(fs)
			enumIn(fs, &o.mode, "mode", "", features.Modes, "what the verifier will see of a suspect")
			fs.StringVar(&o.victim, "victim", "", "victim model file (trained on the watermarked set)")
			var benign listFlag
			fs.Var(&benign, "benign", "benign model file (trained on the clean set); repeat for several")
			fs.StringVar(&o.key, "key", "", "watermark key (key.json written by move embed)")
			fs.StringVar(&o.out, "out", "", "meta-classifier file to write")
			var family, layout string
			enumIn(fs, &family, "features", "", features.FamilyNames, "white-box feature family (default weights; see below)")
			enumIn(fs, &layout, "layout", "", features.Layouts, "white-box layout (the older name of --features: compressed = weights, full = weights-full, compressed-raw = weights-raw)")
			var positive, negative listFlag
			fs.Var(&positive, "positive", "a further model labelled like the victim: the owner's own student of it (repeatable; see below)")
			fs.Var(&negative, "negative", "a further model labelled like the benign models: the owner's student of one of them (repeatable)")
			floatIn(fs, &o.heldOut, "held-out", 0.5, open(0, 1), "fraction of key samples kept for verification")
			intIn(fs, &o.maxTrain, "max-train", 500, 2, 1<<24, "at most this many key samples train the classifier")
			fs.BoolVar(&o.noControls, "no-controls", false, "ignore the key's control styles (the paper's classifier: victim against benign on the owner's style only)")
			intIn(fs, &o.gainAugs, "gain-augs", verify.GainTopAugs, 1, len(features.Augmentations), "style-gain-top: average each key image's gain over the first N of the paper's augmentations (1: the images alone)")
			enumIn(fs, &o.hidden, "classifier", "mlp", []string{"mlp", "logistic"}, "the meta-classifier: mlp (input/8, input/16 hidden units, capped) or logistic")
			fs.Uint64Var(&o.seed, "seed", 0, "random seed (split, initialisation)")
			fs.BoolVar(&o.force, "force", false, "overwrite --out")
			fs.BoolVar(&o.jsonOut, "json", false, "print JSON on stdout")
			if err := parse(fs, args); err != nil {
				return err
			}
			var err error
			if o.onnx, err = onnxOpts(); err != nil {
				return err
			}
			o.benign, o.positive, o.negative = benign, positive, negative
			if family == features.GradSimilarity {
				if err := need(fs, "mode", "victim", "key", "out"); err != nil {
					return err
				}
				o.layout, o.command = family, strings.Join(append([]string{"move", "meta"}, args...), " ")
				return runMetaSimilarity(o, stdout, stderr)
			}
			if err := need(fs, "mode", "victim", "benign", "key", "out"); err != nil {
				return err
			}
			switch {
			case family != "" && layout != "" && features.Families[family] != layout:
				return fmt.Errorf("--features %s and --layout %s disagree: give one", family, layout)
			case family != "":
				o.layout = features.Families[family]
			case layout != "":
				o.layout = layout
			default:
				o.layout = features.Compressed
			}
			o.command = strings.Join(append([]string{"move", "meta"}, args...), " ")
			return runMeta(o, stdout, stderr)
		},
	}
}

func runMeta(o metaOptions, stdout, stderr io.Writer) error {
	if _, err := os.Stat(o.out); err == nil && !o.force {
		return fmt.Errorf("%s: %w", o.out, atomicfile.ErrExists)
	}
	victim, _, err := classifier.Load(o.victim, o.onnx)
	if err != nil {
		return err
	}
	victimHash, err := fileHash(o.victim)
	if err != nil {
		return err
	}
	var benign []classifier.Model
	var benignHashes []string
	for _, p := range o.benign {
		b, _, err := classifier.Load(p, o.onnx)
		if err != nil {
			return err
		}
		h, err := fileHash(p)
		if err != nil {
			return err
		}
		if h == victimHash {
			return fmt.Errorf("%s is the victim itself (the same file as %s): the benign models must be trained on the clean set", p, o.victim)
		}
		benign, benignHashes = append(benign, b), append(benignHashes, h)
	}
	extra := func(paths []string, what string) ([]classifier.Model, []string, error) {
		var ms []classifier.Model
		var hs []string
		for _, p := range paths {
			m, _, err := classifier.Load(p, o.onnx)
			if err != nil {
				return nil, nil, fmt.Errorf("%s model: %w", what, err)
			}
			h, err := fileHash(p)
			if err != nil {
				return nil, nil, err
			}
			ms, hs = append(ms, m), append(hs, h)
		}
		return ms, hs, nil
	}
	pos, posHashes, err := extra(o.positive, "positive")
	if err != nil {
		return err
	}
	neg, negHashes, err := extra(o.negative, "negative")
	if err != nil {
		return err
	}
	_, pairs, err := watermark.LoadKeyPairs(o.key, 0)
	if err != nil {
		return err
	}
	if o.layout == features.GainTop {
		switch {
		case o.mode != features.White:
			return fmt.Errorf("--features %s is a white-box family (m = 10): it needs --mode white", o.layout)
		}
		c, err := verify.GainTopRecord(verify.GainTopRankers{Victim: victim, Positives: pos, Benign: benign, Negatives: neg}, pairs, o.gainAugs)
		if err != nil {
			return fmt.Errorf("%s, %s: %w", o.victim, o.key, err)
		}
		c.Info.Seed, c.Info.Version, c.Info.Command, c.Info.VictimHash, c.Info.BenignHashes = o.seed, buildinfo.Version, o.command, victimHash, benignHashes
		for _, i := range c.Info.PositivesKept {
			c.Info.PositiveHashes = append(c.Info.PositiveHashes, posHashes[i])
		}
		c.Info.NegativeHashes = negHashes
		for i, p := range c.Info.PositiveP {
			state := "dropped: it does not gain where the victim gains"
			if len(benign)+len(neg) < 2 {
				state = "dropped: the gate needs two benign models (or negatives), one to choose the images and one to read it against"
			}
			if slices.Contains(c.Info.PositivesKept, i) {
				state = "kept"
			}
			fmt.Fprintf(stderr, "positive %s: its gains on the victim's top %d images above the benign models': p %.3g, %s\n", o.positive[i], verify.PositiveGateM, p, state)
		}
		if printed, err := writeMeta(c, o, stdout); err != nil || printed {
			return err
		}
		who := "the victim's"
		if kept := len(c.Info.PositivesKept); kept > 0 {
			who = fmt.Sprintf("the mean of the victim's and %d positive models'", kept)
		}
		fmt.Fprintf(stdout, "white-box %s: nothing trained; %d key samples ranked by %s style gain beyond the %d benign models', over %d augmentations (move verify reads the top m) -> %s\n",
			o.layout, len(c.Info.HeldOutIdx), who, len(benign)+len(neg), c.Info.Views, o.out)
		return nil
	}
	fo := meta.Options{}
	if o.hidden == "logistic" {
		fo.Hidden = []int{}
	}
	fmt.Fprintf(stderr, "training the %s-box meta-classifier on %d key samples (%.0f%% held out)\n", o.mode, len(pairs), 100*o.heldOut)
	c, err := verify.TrainMeta(victim, benign, pairs, verify.MetaOptions{Mode: o.mode, Layout: o.layout, HeldOut: o.heldOut, MaxTrain: o.maxTrain, NoControls: o.noControls, Seed: o.seed, Fit: fo, Positives: pos, Negatives: neg})
	if err != nil {
		return err
	}
	c.Info.Version, c.Info.Command, c.Info.VictimHash = buildinfo.Version, o.command, victimHash
	c.Info.BenignHashes, c.Info.PositiveHashes, c.Info.NegativeHashes = benignHashes, posHashes, negHashes
	if printed, err := writeMeta(c, o, stdout); err != nil || printed {
		return err
	}
	fmt.Fprintf(stdout, "%s-box meta-classifier (%d features, hidden %v): train accuracy %.3f, held-out accuracy %.3f -> %s\n",
		o.mode, c.Info.Dim, c.Info.Hidden, c.Info.TrainAcc, c.Info.HeldOutAcc, o.out)
	return chanceLevel(c.Info.HeldOutAcc, stderr)
}

// writeMeta records the key's hash in c, writes c to --out and, with --json, prints its
// record (printed).
func writeMeta(c *meta.Classifier, o metaOptions, stdout io.Writer) (printed bool, err error) {
	if c.Info.KeyHash, err = fileHash(o.key); err != nil {
		return false, err
	}
	if err := c.Save(o.out, o.force); err != nil {
		return false, err
	}
	if o.jsonOut {
		return true, json.NewEncoder(stdout).Encode(c.Info)
	}
	return false, nil
}

// runMetaSimilarity writes the meta file of the input-gradient similarity family: no
// classifier, the victim's and the key's hashes and every key sample as one to verify on.
func runMetaSimilarity(o metaOptions, stdout, stderr io.Writer) error {
	switch {
	case o.mode != features.White:
		return fmt.Errorf("--features %s reads input gradients: it needs --mode white", o.layout)
	case len(o.benign)+len(o.positive)+len(o.negative) > 0:
		return fmt.Errorf("--features %s trains no classifier: it takes no --benign, --positive or --negative (the victim is the reference its scores are taken against)", o.layout)
	}
	if _, err := os.Stat(o.out); err == nil && !o.force {
		return fmt.Errorf("%s: %w", o.out, atomicfile.ErrExists)
	}
	victim, _, err := classifier.Load(o.victim, o.onnx)
	if err != nil {
		return err
	}
	_, pairs, err := watermark.LoadKeyPairs(o.key, 0)
	if err != nil {
		return err
	}
	c, err := verify.SimilarityRecord(victim, pairs)
	if err != nil {
		return fmt.Errorf("%s, %s: %w", o.victim, o.key, err)
	}
	c.Info.Seed, c.Info.Version, c.Info.Command = o.seed, buildinfo.Version, o.command
	if c.Info.VictimHash, err = fileHash(o.victim); err != nil {
		return err
	}
	if printed, err := writeMeta(c, o, stdout); err != nil || printed {
		return err
	}
	fmt.Fprintf(stdout, "white-box %s: nothing trained; verification compares input gradients with the victim's (move verify --victim %s) on %d key samples -> %s\n",
		o.layout, o.victim, len(pairs), o.out)
	return nil
}

// minHeldOut is the held-out accuracy below which a meta-classifier is no better than chance
// at telling the victim from the benign models: it cannot support a verdict.
const minHeldOut = 0.6

// chanceLevel warns (and answers "no", exit status 1) when the classifier is at chance level.
func chanceLevel(acc float64, stderr io.Writer) error {
	if acc >= minHeldOut && !math.IsNaN(acc) {
		return nil
	}
	fmt.Fprintf(stderr, "move: caution: held-out accuracy %.3f (< %g): the classifier tells the victim from the benign models no better than chance; "+
		"its verdicts would mean nothing (is the victim trained on the watermarked set, the benign models on the clean one?)\n", acc, minHeldOut)
	return negative{"the meta-classifier is at chance level"}
}
