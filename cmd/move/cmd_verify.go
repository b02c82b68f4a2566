package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"

	"move/internal/buildinfo"
	"move/internal/features"
	"move/internal/meta"
	"move/internal/modelfile"
	"move/internal/oip"
	"move/internal/verify"
	"move/internal/watermark"
)

func fileHash(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:]), nil
}

func loadModel(path string) (verify.Model, modelfile.Info, error) {
	m, info, err := modelfile.Load(path)
	if err != nil {
		return verify.Model{}, info, err
	}
	return verify.Model{Local: m, Norm: info.Norm, Size: info.InputSize}, info, nil
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
--layout compressed (the default, as the paper's published code) sums each kernel's signs
over its spatial taps and leaves out 1-D weights: on CIFAR-10 (quick profile) a resnet20's
271,690 signs become 32,944, the classifier's held-out accuracy rises from 0.996 to 1.000
and the direct copy's p-value falls from 0.068 to 0.001 (the full vector lets the classifier
fit noise of the two benign models it sees); --layout full keeps every sign. Models may be move model files or ONNX files; white-box
models must share one architecture (the weights must line up).

The key's samples are split (--held-out, default half) into samples that train the classifier
and samples kept for verification; the split is recorded in META so that verification never
uses an image the classifier was trained on. The classifier's held-out accuracy is reported.

When the key has control styles, only samples with control versions are used, and the
victim's and the benign models' features on the control styles are negatives as well: the
classifier learns what is specific to the victim's answer to the owner's style, not a
general steadiness under restyling that any confident model has (--no-controls: the paper's
classifier).

EXIT STATUS
  0 on success, 2 on error.`,
		run: func(ctx context.Context, args []string, stdout, stderr io.Writer) error {
			fs := newFlags("meta", stderr)
			applyONNX := onnxFlags(fs)
			mode := fs.String("mode", "", "white or black")
			victimPath := fs.String("victim", "", "victim model file (trained on the watermarked set)")
			var benignPaths listFlag
			fs.Var(&benignPaths, "benign", "benign model file (trained on the clean set); repeat for several")
			keyPath := fs.String("key", "", "watermark key (key.json written by move embed)")
			out := fs.String("out", "", "meta-classifier file to write")
			layout := fs.String("layout", features.Compressed, "white-box layout: compressed (kernels summed over their taps, 1-D weights left out, as the paper's code) or full")
			heldOut := fs.Float64("held-out", 0.5, "fraction of key samples kept for verification")
			maxTrain := fs.Int("max-train", 500, "at most this many key samples train the classifier")
			noControls := fs.Bool("no-controls", false, "ignore the key's control styles (the paper's classifier: victim against benign on the owner's style only)")
			hidden := fs.String("classifier", "mlp", "mlp (input/8, input/16 hidden units, capped) or logistic")
			seed := fs.Uint64("seed", 0, "random seed (split, initialisation)")
			force := fs.Bool("force", false, "overwrite --out")
			jsonOut := fs.Bool("json", false, "print JSON on stdout")
			if err := parse(fs, args); err != nil {
				return err
			}
			if err := applyONNX(); err != nil {
				return err
			}
			if err := need(fs, "mode", "victim", "benign", "key", "out"); err != nil {
				return err
			}
			if *mode != "white" && *mode != "black" {
				return fmt.Errorf("--mode must be white or black, got %q", *mode)
			}
			if _, err := os.Stat(*out); err == nil && !*force {
				return fmt.Errorf("%s: already exists (pass --force to overwrite)", *out)
			}
			victim, _, err := loadModel(*victimPath)
			if err != nil {
				return err
			}
			var benign []verify.Model
			var benignHashes []string
			for _, p := range benignPaths {
				b, _, err := loadModel(p)
				if err != nil {
					return err
				}
				h, err := fileHash(p)
				if err != nil {
					return err
				}
				benign, benignHashes = append(benign, b), append(benignHashes, h)
			}
			key, err := watermark.LoadKey(*keyPath)
			if err != nil {
				return err
			}
			pairs, err := watermark.LoadPairs(key, 0)
			if err != nil {
				return err
			}
			fo := meta.Options{}
			if *hidden == "logistic" {
				fo.Hidden = []int{}
			}
			fmt.Fprintf(stderr, "training the %s-box meta-classifier on %d key samples (%.0f%% held out)\n", *mode, len(pairs), 100**heldOut)
			c, err := verify.TrainMeta(victim, benign, pairs, verify.MetaOptions{Mode: *mode, Layout: *layout, HeldOut: *heldOut, MaxTrain: *maxTrain, NoControls: *noControls, Seed: *seed, Fit: fo})
			if err != nil {
				return err
			}
			c.Info.Version = buildinfo.Version
			c.Info.Command = strings.Join(append([]string{"move", "meta"}, args...), " ")
			if c.Info.VictimHash, err = fileHash(*victimPath); err != nil {
				return err
			}
			c.Info.BenignHashes = benignHashes
			if c.Info.KeyHash, err = fileHash(*keyPath); err != nil {
				return err
			}
			if err := c.Save(*out, *force); err != nil {
				return err
			}
			if *jsonOut {
				return json.NewEncoder(stdout).Encode(c.Info)
			}
			fmt.Fprintf(stdout, "%s-box meta-classifier (%d features, hidden %v): train accuracy %.3f, held-out accuracy %.3f -> %s\n",
				*mode, c.Info.Dim, c.Info.Hidden, c.Info.TrainAcc, c.Info.HeldOutAcc, *out)
			return nil
		},
	}
	commands["verify"] = &command{
		summary: "test whether a suspect model was stolen from the victim",
		usage:   "--meta META --key KEY --benign B --suspect S [flags]",
		help: `Samples m transformed images of the key that the meta-classifier did not train on
(default 10 white-box, 100 black-box), computes the meta-classifier's victim probability for
the suspect and for the benign model on each, and runs a one-tailed paired t-test
(H1: mu_suspect > mu_benign). Prints the p-value, delta-mu and the verdict at --alpha.

When the key has control styles (move embed styles part of the key with styles the victim
never trained on) and the meta-classifier was trained with them, evidence must be specific
to the owner's style. Black-box, the verdict comes from the style-gain test: for each of up
to 500 held-out key images, the suspect's probability of the true class on the owner-styled
image minus its mean over the control-styled versions, paired against the reference's
(H1: the suspect's gain exceeds the reference's by more than 0.01). White-box (and the
black-box meta-classifier, reported beside the verdict), each image's score is the
classifier's victim probability on the owner's style minus its mean over the control styles,
tested against the reference and against the margin; both must reject. A model that answers
every style the same way (one robust to restyling for its own reasons, one that answers a
constant) gains nothing, whatever its answers look like. Without controls (the paper's
test), converged public models and a constant answer were judged stolen: training on styled
images makes the victim robust to restyling in general, and that is what the paper's
black-box features recognise.

A suspect that is not a working classifier on the owner's images (its accuracy on the key's
originals is not above guessing at --alpha, one-sided binomial test) gets the verdict
"inconclusive": its answers are no evidence either way.
--test welch uses Welch's unequal-variance test instead (what the paper's published code
computes); --resamples R repeats the test on R resamples and decides on the median p-value
(their harmonic mean, the published code's figure, is reported too).

The benign reference (--benign) must be a model the meta-classifier never saw: a clean model
trained like the others but not given to move meta. The classifier learns to call the
models it was trained against "benign", so a reference it saw scores lower than any unseen
model would, and the test then flags innocent models: on CIFAR-10 a white-box test against
the meta-classifier's own benign model flagged an independently trained model (p = 0.003).
With an unseen reference, an innocent suspect and the reference are alike under the null
hypothesis, which is what the test assumes. verify refuses a reference the classifier was
trained against unless --allow-seen-benign is given (the paper's own procedure).

--record REC checks a registration record (move register) before testing: its signature
(against --public-key, the owner's key; without it only against the key the record carries),
that every file it names is unchanged, and that it registers the --meta and --key in use. Any
mismatch is refused, naming the file; the record goes into the output.

The test has a margin, --min-delta (default 0.05): H0: mu_S - mu_B <= min-delta against H1:
mu_S - mu_B > min-delta, and a verdict of "stolen" needs p < alpha. Without a margin (the
paper's test, --min-delta 0), when the meta-classifier's probabilities saturate near 0 or 1 a
paired test on values that barely vary calls a difference of a thousandth significant; such a
difference is no evidence of theft, and with the margin an innocent suspect gets a large
p-value.

What each mode can see. White-box features are gradient signs in the suspect's own weight
space, so what a white-box classifier recognises is the victim's weights — the coordinates of
its lineage — not the external features as such. It flags models that carry the victim's
weights (a copy, a fine-tuned or "washed" model) and misses models trained from a fresh
initialisation (distillation, label- or logit-query extraction, data-free distillation),
whose neurons are arranged differently; matching their neurons to the victim's by activation
correlation did not help (matched units correlate 0.3-0.5). Conversely it also flags a model
that merely started from the victim's initial weights: on the Fashion-MNIST demo a resnet20
trained only on clean data from the victim's architecture and seed got p = 0.005, the
victim's own copy p = 0.004, while a distilled student got p = 0.24 from a fresh seed and
0.005 from the victim's. So train the victim from a seed nobody else uses (move train
--seed; move experiment derives it from --seed), and when the victim was fine-tuned from a
public checkpoint, do not rest a white-box verdict on its own: a model fine-tuned from the
same checkpoint shares those coordinates. A model file also answers probabilities, so run
both tests on it; black-box features do not depend on how weights are arranged.

EXIT STATUS
  0 when the verdict is "stolen", 1 when it is "not stolen" or "inconclusive", 2 on error.`,
		run: func(ctx context.Context, args []string, stdout, stderr io.Writer) error {
			fs := newFlags("verify", stderr)
			applyONNX := onnxFlags(fs)
			metaPath := fs.String("meta", "", "meta-classifier file (move meta)")
			keyPath := fs.String("key", "", "watermark key")
			benignPath := fs.String("benign", "", "benign reference: a clean model the meta-classifier was not trained against")
			allowSeen := fs.Bool("allow-seen-benign", false, "accept a benign reference the meta-classifier was trained against (biased towards \"stolen\")")
			suspectPath := fs.String("suspect", "", "suspect model file (white- or black-box)")
			endpoint := fs.String("endpoint", "", "suspect served over the Open Inference Protocol (black-box)")
			m := fs.Int("m", 0, "transformed images per test (0: 10 white-box, 100 black-box)")
			alpha := fs.Float64("alpha", 0.01, "significance level")
			test := fs.String("test", "paired", "paired or welch")
			resamples := fs.Int("resamples", 1, "repeat the test on this many resamples")
			minDelta := fs.Float64("min-delta", 0.05, "margin of the test: H1 is mu_S - mu_B > min-delta (0: the paper's test)")
			seed := fs.Uint64("seed", 0, "random seed (sampling)")
			jsonOut := fs.Bool("json", false, "print JSON on stdout")
			timeout := fs.Duration("timeout", 30*time.Second, "per-request timeout for --endpoint")
			budget := fs.Int("budget", 0, "most images --endpoint may be asked about (0: no limit)")
			concurrency := fs.Int("concurrency", 2, "requests in flight at once for --endpoint")
			recPath := fs.String("record", "", "registration record (move register): checked, and its contents put in the output")
			pubPath := fs.String("public-key", "", "the owner's public key (move keygen) to check --record's signature against")
			if err := parse(fs, args); err != nil {
				return err
			}
			if err := applyONNX(); err != nil {
				return err
			}
			if err := need(fs, "meta", "key", "benign"); err != nil {
				return err
			}
			if (*endpoint == "") == (*suspectPath == "") {
				fmt.Fprintln(stderr, "move verify: give the suspect as --suspect FILE or --endpoint URL (one of them)")
				return errUsage
			}
			if *test != "paired" && *test != "welch" {
				return fmt.Errorf("--test must be paired or welch, got %q", *test)
			}
			c, err := meta.Load(*metaPath)
			if err != nil {
				return err
			}
			var recOut json.RawMessage
			recLine := ""
			if *recPath != "" {
				rec, p, err := checkRecord(*recPath, *pubPath, *metaPath, *keyPath, stderr)
				if err != nil {
					return err
				}
				recOut, recLine = recordJSON(rec, p), recordLine(p)
			}
			if h, err := fileHash(*keyPath); err != nil {
				return err
			} else if c.Info.KeyHash != "" && h != c.Info.KeyHash {
				return fmt.Errorf("%s is not the key the meta-classifier was trained with", *keyPath)
			}
			benignHash, err := fileHash(*benignPath)
			if err != nil {
				return err
			}
			seen := slices.Contains(c.Info.BenignHashes, benignHash)
			if seen {
				msg := fmt.Sprintf("%s trained this meta-classifier: as the test's reference it makes innocent models look stolen (see move help verify); give a benign model the classifier never saw", *benignPath)
				if !*allowSeen {
					return errors.New(msg)
				}
				fmt.Fprintln(stderr, "move: caution: "+msg)
			}
			var suspect verify.Model
			var si modelfile.Info
			var client *oip.Client
			if *endpoint != "" {
				if c.Info.Mode == "white" {
					return fmt.Errorf("a served model only answers probabilities: verify it with a black-box meta-classifier (move meta --mode black)")
				}
				if client, err = oip.Dial(ctx, *endpoint, *timeout); err != nil {
					return fmt.Errorf("suspect endpoint: %w", err)
				}
				client.Budget, client.Concurrency = *budget, *concurrency
				suspect = verify.Model{Prober: client}
				si.Arch = "(remote)"
			} else if suspect, si, err = loadModel(*suspectPath); err != nil {
				return err
			}
			benign, _, err := loadModel(*benignPath)
			if err != nil {
				return err
			}
			key, err := watermark.LoadKey(*keyPath)
			if err != nil {
				return err
			}
			pairs, err := watermark.LoadPairs(key, 0)
			if err != nil {
				return err
			}
			res, err := verify.Run(c, suspect, benign, pairs, verify.Options{M: *m, Alpha: *alpha, Test: *test, Resamples: *resamples, Seed: *seed, MinDelta: *minDelta})
			if err != nil {
				return err
			}
			verdict := strings.ToUpper(res.Verdict)
			if *jsonOut {
				h, _ := fileHash(*suspectPath)
				name := *suspectPath
				queries := 0
				if client != nil {
					name, h, queries = *endpoint, "", client.Queries()
				}
				out := map[string]any{"suspect": name, "suspect_sha256": h, "queries": queries, "benign_sha256": benignHash, "benign_seen_in_training": seen, "key_sha256": c.Info.KeyHash,
					"version": buildinfo.Version, "command": strings.Join(append([]string{"move", "verify"}, args...), " "), "seed": *seed,
					"result": res, "verdict": strings.ToLower(verdict)}
				if recOut != nil {
					out["record"] = recOut
				}
				enc := json.NewEncoder(stdout)
				enc.SetIndent("", "  ")
				if err := enc.Encode(out); err != nil {
					return err
				}
			} else {
				if recLine != "" {
					fmt.Fprintln(stdout, recLine)
				}
				if len(res.Folded) == 2 {
					fmt.Fprintf(stdout, "white-box features of the folded form: %d batch norms of the suspect and %d of the benign model merged into their convolutions\n", res.Folded[0], res.Folded[1])
				}
				if res.Contrast != "" {
					fmt.Fprintf(stdout, "scores contrast the owner's style with %d control styles (%s): score = C(owner style) - mean C(control styles)\n", c.Info.Controls, res.Contrast)
				}
				fmt.Fprintf(stdout, "suspect's accuracy on the key's originals: %.1f%% of %d (against guessing: p %.3g)\n", 100*res.KeyAccuracy, res.KeyAccuracyN, res.KeyAccuracyP)
				if res.Verdict == verify.Inconclusive {
					fmt.Fprintf(stdout, "the suspect is not a working classifier on the owner's images: its answers are no evidence either way\n")
				}
				if res.Contrast != "" {
					fmt.Fprintf(stdout, "meta-classifier: against the reference p %.4g, delta-mu %.4f; the suspect's own specificity p %.4g, mean score %.4f\n",
						res.Test.P, res.Test.DeltaMu, res.Specificity.P, res.Specificity.DeltaMu)
				}
				if res.Gain != nil {
					fmt.Fprintf(stdout, "style gain (true-class probability on the owner's style minus on the control styles), %d images: suspect against reference p %.4g, delta %.4f (margin %g) — the verdict's test\n",
						res.GainM, res.Gain.P, res.Gain.DeltaMu, res.GainMargin)
				}
				fmt.Fprintf(stdout, "%s-box %s test (H1: delta-mu > %g), m = %d: p-value %.4g, delta-mu %.4f, alpha %g -> %s\n",
					c.Info.Mode, res.Test.Test, res.MinDelta, res.M, res.P, res.DeltaMu, res.Alpha, verdict)
				if *resamples > 1 {
					fmt.Fprintf(stdout, "over %d resamples: median p %.4g, harmonic-mean p %.4g\n", *resamples, res.PMedian, res.PHarmonic)
				}
				if client != nil {
					fmt.Fprintf(stdout, "queries spent on %s: %d images\n", *endpoint, client.Queries())
				}
			}
			if !res.Stolen {
				return negative{res.Verdict}
			}
			return nil
		},
	}
}
