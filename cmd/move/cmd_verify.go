package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"gonum.org/v1/gonum/stat"

	"move/internal/buildinfo"
	"move/internal/classifier"
	"move/internal/features"
	"move/internal/meta"
	"move/internal/modelfile"
	"move/internal/oip"
	"move/internal/record"
	"move/internal/verify"
	"move/internal/watermark"
)

// verifyOptions are move verify's flags.
type verifyOptions struct {
	meta, key, benign, test, record, publicKey string
	victim                                     string // the input-grad-sim family's reference
	suspects, endpoints, rebuttals             []string
	allowSeen, jsonOut                         bool
	m, resamples, budget, concurrency          int
	alpha, minDelta, shortfall                 float64
	seed                                       uint64
	timeout, deadline                          time.Duration
	onnx                                       modelfile.ONNXDefaults
	command                                    string
}

// verifyReport is move verify's JSON output.
type verifyReport struct {
	Suspect       string         `json:"suspect"`
	SuspectSHA256 string         `json:"suspect_sha256"`
	Queries       int            `json:"queries"`
	BenignSHA256  string         `json:"benign_sha256"`
	BenignSeen    bool           `json:"benign_seen_in_training"`
	KeySHA256     string         `json:"key_sha256"`
	Version       string         `json:"version"`
	Command       string         `json:"command"`
	Seed          uint64         `json:"seed"`
	Result        *verify.Result `json:"result"`
	Verdict       string         `json:"verdict"`
	// Error says, for a suspect of a screened zoo that could not be read (white-box weights
	// that do not line up with the victim's: verdict "unreadable"), why.
	Error  string        `json:"error,omitempty"`
	Record *recordReport `json:"record,omitempty"`
	// Rebuttals are the accused's registration records whose styles the gain test counted.
	Rebuttals []rebuttalReport `json:"rebuttals,omitempty"`
}

func init() {
	commands["verify"] = &command{
		summary: "test whether a suspect model was stolen from the victim",
		usage:   "--meta META --key KEY --benign B --suspect S [--suspect S2 ...] [flags]",
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
"inconclusive": its answers are no evidence either way. So does a suspect whose accuracy on
the key's originals beats the reference's by more than --reference-shortfall (default 0.15):
any trained model gains more from restyling than a weak one, so a weak reference is no null
(on CIFAR-10, ranked and tested with one-epoch models, a well-trained innocent got p = 4e-4);
test again against a reference as good as the suspect. For the same reason move meta
--features style-gain-top refuses benign models more than 15 points less accurate than the
victim.
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

--rebuttal REC is the accused's answer: their own registration record, of a MOVE key with
their own style and of the suspect itself (the same file; a served suspect cannot be matched
and move says so), signed before the owner's --record. Its style (applied with that key's
transfer parameters) joins the control styles of the black-box style-gain test, so a response
that the accused's own watermark explains is not evidence; the test without it is reported
beside. No statistic on the suspect can tell a watermark in a style near the owner's from the
owner's: on CIFAR-10 a model trained on someone else's blue-and-yellow procedural strokes
answered starry-night images as well as the victim's copy did (style gain 0.052 against
0.056, p = 9e-5). Only the order of the records tells who was first, so a record signed after
the owner's is refused (a thief could pick a style like the owner's as cover), and without
--record move warns that it cannot check the order. A record's time is only as good as its
digest's timestamp at an outside service.

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

A meta file of the input-grad-sim family (move meta --features input-grad-sim) holds no
classifier: each image's score is the cosine between the suspect's input gradient and the
victim's (--victim, the file the meta file records), mean over 8 shifted and mirrored views,
paired against the reference's with the same margin. It reads a suspect of any architecture
that takes the victim's images.

Several suspects (--suspect and --endpoint repeated: a model zoo to screen) are verified
against the same meta-classifier, reference and key, loaded once; the output is one row per
suspect (with --json, one report per suspect and the number flagged). In a white-box screen, a
suspect whose weights do not line up with the victim's (another architecture) is reported
"unreadable" and the others are verified; given alone, it is an error.

EXIT STATUS
  0 when the verdict is "stolen" (of several suspects: when any is flagged), 1 when it is
  "not stolen" or "inconclusive" (for every suspect), 2 on error,
  3 on an internal error (a bug).`,
		run: func(ctx context.Context, args []string, stdout, stderr io.Writer) error {
			var o verifyOptions
			fs := newFlags("verify", stderr)
			onnxOpts := onnxFlags(fs)
			fs.StringVar(&o.meta, "meta", "", "meta-classifier file (move meta)")
			fs.StringVar(&o.key, "key", "", "watermark key")
			fs.StringVar(&o.benign, "benign", "", "benign reference: a clean model the meta-classifier was not trained against")
			fs.StringVar(&o.victim, "victim", "", "the victim model file, for a meta file of the input-grad-sim family (move meta --features input-grad-sim)")
			fs.BoolVar(&o.allowSeen, "allow-seen-benign", false, "accept a benign reference the meta-classifier was trained against (biased towards \"stolen\")")
			var suspects, endpoints listFlag
			fs.Var(&suspects, "suspect", "suspect model file (white- or black-box); repeat for several")
			fs.Var(&endpoints, "endpoint", "suspect served over the Open Inference Protocol (black-box); repeat for several")
			intIn(fs, &o.m, "m", 0, 0, 100000, "transformed images per test (0: 10 white-box, 100 black-box)")
			floatIn(fs, &o.alpha, "alpha", 0.01, open(0, 1), "significance level")
			enumIn(fs, &o.test, "test", "paired", []string{"paired", "welch"}, "the t-test")
			intIn(fs, &o.resamples, "resamples", 1, 1, 10000, "repeat the test on this many resamples")
			floatIn(fs, &o.minDelta, "min-delta", 0.05, interval{lo: 0, hi: 1, hiOpen: true}, "margin of the test: H1 is mu_S - mu_B > min-delta (0: the paper's test)")
			floatIn(fs, &o.shortfall, "reference-shortfall", verify.DefaultRefShortfall, interval{lo: 0, hi: 1, loOpen: true}, "the most the reference's accuracy on the key's originals may fall below the suspect's; beyond it the verdict is inconclusive (1: never)")
			fs.Uint64Var(&o.seed, "seed", 0, "random seed (sampling)")
			fs.BoolVar(&o.jsonOut, "json", false, "print JSON on stdout")
			durationIn(fs, &o.timeout, "timeout", 30*time.Second, "per-request timeout for --endpoint")
			durationIn(fs, &o.deadline, "deadline", time.Hour, "the most time all requests to --endpoint may take together, retries included")
			intIn(fs, &o.budget, "budget", 0, 0, 1<<30, "most images --endpoint may be asked about, retries included (0: no limit)")
			intIn(fs, &o.concurrency, "concurrency", 2, 1, 64, "requests in flight at once for --endpoint")
			fs.StringVar(&o.record, "record", "", "registration record (move register): checked, and its contents put in the output")
			fs.StringVar(&o.publicKey, "public-key", "", "the owner's public key (move keygen) to check --record's signature against")
			var rebuttals listFlag
			fs.Var(&rebuttals, "rebuttal", "the accused's own registration record, older than --record: its key's style counts as a control of the black-box style-gain test; repeat for several")
			if err := parse(fs, args); err != nil {
				return err
			}
			var err error
			if o.onnx, err = onnxOpts(); err != nil {
				return err
			}
			if err := need(fs, "meta", "key", "benign"); err != nil {
				return err
			}
			o.suspects, o.endpoints, o.rebuttals = suspects, endpoints, rebuttals
			if len(o.suspects)+len(o.endpoints) == 0 {
				fmt.Fprintln(stderr, "move verify: give the suspect as --suspect FILE or --endpoint URL (repeat for several)")
				return errUsage
			}
			o.command = strings.Join(append([]string{"move", "verify"}, args...), " ")
			return runVerify(ctx, o, stdout, stderr)
		},
	}
}

func runVerify(ctx context.Context, o verifyOptions, stdout, stderr io.Writer) error {
	var rec *recordReport
	if o.record != "" { // first: a changed file is named by the record before anything reads it
		metaHash, err := fileHash(o.meta)
		if err != nil {
			return fmt.Errorf("meta-classifier: %w", err)
		}
		keyHash, err := fileHash(o.key)
		if err != nil {
			return fmt.Errorf("watermark key: %w", err)
		}
		if rec, err = checkRecord(o.record, o.publicKey, metaHash, keyHash, stderr); err != nil {
			return err
		}
	}
	c, err := meta.Load(o.meta)
	if err != nil {
		return err
	}
	sim, top := c.Info.Layout == features.GradSimilarity, c.Info.Layout == features.GainTop
	switch {
	case sim && o.victim == "":
		return fmt.Errorf("%s is of the %s family: give the victim it was written for with --victim", o.meta, c.Info.Layout)
	case !sim && o.victim != "":
		return fmt.Errorf("--victim is for a meta file of the %s family; %s holds a %s classifier, which needs none", features.GradSimilarity, o.meta, c.Info.Layout)
	case sim && len(o.rebuttals) > 0:
		return errors.New("rebuttal styles count in the black-box style-gain test; this is a white-box test")
	case sim && (o.resamples > 1 || o.test != "paired"):
		return fmt.Errorf("the %s test is the paired t-test on one sample of m images: no --resamples or --test", c.Info.Layout)
	case top && (len(o.rebuttals) > 0 || o.resamples > 1 || o.test != "paired"):
		return fmt.Errorf("the %s test is the paired style-gain test on the m top-ranked key images: no --rebuttal, --resamples or --test", c.Info.Layout)
	}
	var rebuttals []verify.Rebuttal
	var rebutReps []rebuttalReport
	for _, f := range o.rebuttals {
		rb, rep, err := loadRebuttal(f, rec, stderr)
		if err != nil {
			return err
		}
		rebuttals, rebutReps = append(rebuttals, rb), append(rebutReps, rep)
	}
	keyHash, err := fileHash(o.key)
	if err != nil {
		return fmt.Errorf("watermark key: %w", err)
	}
	if c.Info.KeyHash != "" && keyHash != c.Info.KeyHash {
		return fmt.Errorf("%s is not the key the meta-classifier was trained with", o.key)
	}
	benignHash, err := fileHash(o.benign)
	if err != nil {
		return err
	}
	if benignHash == c.Info.VictimHash {
		return fmt.Errorf("%s is the victim itself: the reference must be a clean model", o.benign)
	}
	seen := slices.Contains(c.Info.BenignHashes, benignHash)
	if seen {
		msg := fmt.Sprintf("%s trained this meta-classifier: as the test's reference it makes innocent models look stolen (see move help verify); give a benign model the classifier never saw", o.benign)
		if top {
			msg = fmt.Sprintf("%s ranked this meta file's key images (they are where it gains least): as the test's reference it makes innocent models look stolen; give a benign model that took no part", o.benign)
		}
		if !o.allowSeen {
			return errors.New(msg)
		}
		fmt.Fprintln(stderr, "move: caution: "+msg)
	}
	loadStart := time.Now()
	benign, _, err := classifier.Load(o.benign, o.onnx)
	if err != nil {
		return err
	}
	_, pairs, err := watermark.LoadKeyPairs(o.key, 0)
	if err != nil {
		return err
	}
	var simTest *verify.SimilarityTest
	if sim {
		h, err := fileHash(o.victim)
		if err != nil {
			return err
		}
		if h != c.Info.VictimHash {
			return fmt.Errorf("%s is not the victim %s was written for", o.victim, o.meta)
		}
		victim, _, err := classifier.Load(o.victim, o.onnx)
		if err != nil {
			return err
		}
		// The victim's gradients and the reference's scores, once for every suspect.
		if simTest, err = verify.NewSimilarityTest(victim, benign, pairs, c.Info.HeldOutIdx, verify.Options{M: o.m, Alpha: o.alpha, Seed: o.seed, MinDelta: o.minDelta, RefShortfall: o.shortfall}); err != nil {
			return err
		}
	}
	// The suspects: files, then endpoints, in the order given.
	type suspect struct {
		name   string
		remote bool
	}
	var suspects []suspect
	for _, f := range o.suspects {
		suspects = append(suspects, suspect{name: f})
	}
	for _, e := range o.endpoints {
		if c.Info.Mode == features.White && !top {
			return fmt.Errorf("a served model only answers probabilities: verify %s with a black-box meta-classifier (move meta --mode black)", e)
		}
		suspects = append(suspects, suspect{name: e, remote: true})
	}
	if len(suspects) > 1 {
		fmt.Fprintf(stderr, "loaded the meta-classifier, the reference and %d key samples once in %s; verifying %d suspects\n",
			len(pairs), fmtDuration(time.Since(loadStart).Round(time.Millisecond)), len(suspects))
	}
	var reps []verifyReport
	var results []*verify.Result
	flagged := 0
	hashes := make([]string, len(suspects)) // of the files
	for i, sp := range suspects {
		if !sp.remote {
			if hashes[i], err = fileHash(sp.name); err != nil {
				return err
			}
		}
	}
	if len(o.endpoints) == 0 {
		for _, rep := range rebutReps {
			if !slices.Contains(hashes, rep.Model) {
				return fmt.Errorf("rebuttal record %s registers the model %s, which is none of the suspects: a rebuttal speaks for the model it registered", rep.Record, rep.Model[:16])
			}
		}
	}
	for i, sp := range suspects {
		t0 := time.Now()
		var m classifier.Model
		var client *oip.Client
		if sp.remote {
			if client, err = oip.Dial(ctx, sp.name, o.timeout); err != nil {
				return fmt.Errorf("suspect endpoint %s: %w", sp.name, err)
			}
			client.Budget, client.Concurrency, client.Deadline = o.budget, o.concurrency, time.Now().Add(o.deadline)
			m = classifier.Remote(client, 0)
		} else if m, _, err = classifier.Load(sp.name, o.onnx); err != nil {
			return err
		}
		suspectHash := hashes[i]
		// A rebuttal speaks for the model its record registers: a file suspect must be that
		// very file; a served one cannot be matched, so every rebuttal is heard, with a caution.
		var rbs []verify.Rebuttal
		var rbReps []rebuttalReport
		for j, rb := range rebuttals {
			if sp.remote || rebutReps[j].Model == suspectHash {
				rbs, rbReps = append(rbs, rb), append(rbReps, rebutReps[j])
				if sp.remote {
					fmt.Fprintf(stderr, "move: caution: %s is served: nothing shows it is the model rebuttal %s registers\n", sp.name, rebutReps[j].Record)
				}
			}
		}
		var res *verify.Result
		switch {
		case simTest != nil:
			res, err = simTest.Run(m)
		case top:
			res, err = verify.GainTop(c, m, benign, pairs, verify.Options{M: o.m, Alpha: o.alpha, RefShortfall: o.shortfall})
		default:
			res, err = verify.Run(c, m, benign, pairs, verify.Options{M: o.m, Alpha: o.alpha, Test: o.test, Resamples: o.resamples, Seed: o.seed, MinDelta: o.minDelta,
				Rebuttals: rbs, RefShortfall: o.shortfall})
		}
		rep := verifyReport{Suspect: sp.name, SuspectSHA256: suspectHash, BenignSHA256: benignHash, BenignSeen: seen, KeySHA256: c.Info.KeyHash,
			Version: buildinfo.Version, Command: o.command, Seed: o.seed, Record: rec}
		if err != nil && len(suspects) > 1 && errors.Is(err, verify.ErrArchMismatch) {
			// Screening a zoo: a suspect of another architecture is reported, not fatal.
			fmt.Fprintf(stderr, "suspect %d/%d %s: unreadable white-box (%v); verify it black-box\n", i+1, len(suspects), sp.name, err)
			rep.Verdict, rep.Error = unreadable, err.Error()
			reps, results = append(reps, rep), append(results, nil)
			continue
		}
		if err != nil {
			return fmt.Errorf("%s: %w", sp.name, err)
		}
		rep.Result, rep.Verdict, rep.Rebuttals = res, res.Verdict, rbReps
		if client != nil {
			rep.Queries = client.Queries()
		}
		if res.Stolen {
			flagged++
		}
		reps, results = append(reps, rep), append(results, res)
		if len(suspects) > 1 {
			fmt.Fprintf(stderr, "suspect %d/%d %s: %s in %s\n", i+1, len(suspects), sp.name, res.Verdict, fmtDuration(time.Since(t0).Round(time.Millisecond)))
		} else if !o.jsonOut {
			printVerify(stdout, o, c, res, rec, client, sp.name)
		}
	}
	if o.jsonOut {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		var v any = reps[0]
		if len(reps) > 1 {
			v = verifyReports{Mode: c.Info.Mode, Suspects: reps, Flagged: flagged}
		}
		if err := enc.Encode(v); err != nil {
			return err
		}
	} else if len(suspects) > 1 {
		if rec != nil {
			fmt.Fprintln(stdout, recordLine(rec.Payload))
		}
		printVerifyTable(stdout, c.Info.Mode, reps, results)
	}
	if flagged == 0 {
		if len(results) == 1 {
			return negative{results[0].Verdict}
		}
		return negative{"no suspect flagged"}
	}
	return nil
}

// unreadable is the verdict of a screened suspect a white-box meta-classifier cannot read.
const unreadable = "unreadable"

// verifyReports is move verify's JSON output for several suspects.
type verifyReports struct {
	Mode     string         `json:"mode"`
	Suspects []verifyReport `json:"suspects"`
	Flagged  int            `json:"flagged"`
}

// printVerifyTable writes one row per suspect.
func printVerifyTable(w io.Writer, mode string, reps []verifyReport, results []*verify.Result) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "suspect\tkey acc %%\tp-value\tdelta-mu\tverdict\t\n")
	var last *verify.Result
	for i, r := range results {
		if r == nil {
			fmt.Fprintf(tw, "%s\t-\t-\t-\t%s\t\n", reps[i].Suspect, strings.ToUpper(reps[i].Verdict))
			continue
		}
		last = r
		fmt.Fprintf(tw, "%s\t%.1f\t%.4g\t%.4f\t%s\t\n", reps[i].Suspect, 100*r.KeyAccuracy, r.P, r.DeltaMu, strings.ToUpper(r.Verdict))
	}
	tw.Flush()
	if last != nil {
		fmt.Fprintf(w, "%s-box, alpha %g, m = %d; exit status 0 when any suspect is flagged\n", mode, last.Alpha, last.M)
		fmt.Fprintf(w, "the reference answers the key's originals %.1f%% right; a suspect more than %.0f points better is inconclusive against it\n",
			100*last.RefKeyAccuracy, 100*last.RefShortfall)
	}
	for i, r := range results {
		if r != nil && r.Why != "" {
			fmt.Fprintf(w, "%s: inconclusive: %s\n", reps[i].Suspect, r.Why)
		}
	}
	for _, r := range reps {
		if r.Error != "" {
			fmt.Fprintf(w, "%s: %s\n", r.Suspect, r.Error)
		}
	}
}

// printVerify writes the verification of one suspect for people.
func printVerify(w io.Writer, o verifyOptions, c *meta.Classifier, res *verify.Result, rec *recordReport, client *oip.Client, name string) {
	if rec != nil {
		fmt.Fprintln(w, recordLine(rec.Payload))
	}
	if len(res.Folded) == 2 {
		fmt.Fprintf(w, "white-box features of the folded form: %d batch norms of the suspect and %d of the benign model merged into their convolutions\n", res.Folded[0], res.Folded[1])
	}
	if c.Info.Layout == features.GradSimilarity {
		fmt.Fprintf(w, "scores: the cosine between a model's input gradient and the victim's at each key image (mean over %d views); suspect %.4f, reference %.4f on average\n",
			features.MaxViews, stat.Mean(res.ProbSuspect, nil), stat.Mean(res.ProbBenign, nil))
	}
	if res.Contrast != "" {
		fmt.Fprintf(w, "scores contrast the owner's style with %d control styles (%s): score = C(owner style) - mean C(control styles)\n", c.Info.Controls, res.Contrast)
	}
	fmt.Fprintf(w, "accuracy on the key's originals: suspect %.1f%% of %d (against guessing: p %.3g), reference %.1f%%\n", 100*res.KeyAccuracy, res.KeyAccuracyN, res.KeyAccuracyP, 100*res.RefKeyAccuracy)
	if res.Why != "" {
		fmt.Fprintf(w, "inconclusive: %s\n", res.Why)
	}
	if res.Contrast != "" {
		fmt.Fprintf(w, "meta-classifier: against the reference p %.4g, delta-mu %.4f; the suspect's own specificity p %.4g, mean score %.4f\n",
			res.Test.P, res.Test.DeltaMu, res.Specificity.P, res.Specificity.DeltaMu)
	}
	if res.GainUnrebutted != nil {
		fmt.Fprintf(w, "style gain with the key's control styles only: p %.4g, delta %.4f; the accused's earlier styles (%s) count as controls too in the verdict's test\n",
			res.GainUnrebutted.P, res.GainUnrebutted.DeltaMu, strings.Join(res.Rebuttals, ", "))
	}
	if res.Gain != nil {
		fmt.Fprintf(w, "style gain (true-class probability on the owner's style minus on the control styles), %d images: suspect against reference p %.4g, delta %.4f (margin %g) — the verdict's test\n",
			res.GainM, res.Gain.P, res.Gain.DeltaMu, res.GainMargin)
	}
	fmt.Fprintf(w, "%s-box %s test (H1: delta-mu > %g), m = %d: p-value %.4g, delta-mu %.4f, alpha %g -> %s\n",
		c.Info.Mode, res.Test.Test, res.MinDelta, res.M, res.P, res.DeltaMu, res.Alpha, strings.ToUpper(res.Verdict))
	if o.resamples > 1 {
		fmt.Fprintf(w, "over %d resamples: median p %.4g, harmonic-mean p %.4g\n", o.resamples, res.PMedian, res.PHarmonic)
	}
	if client != nil {
		fmt.Fprintf(w, "queries spent on %s: %d images\n", name, client.Queries())
	}
}

// fileHash is the SHA-256 of a file's content, in hex.
func fileHash(path string) (string, error) {
	h, err := record.HashFile(path)
	if err != nil {
		return "", err
	}
	return h.SHA256, nil
}
