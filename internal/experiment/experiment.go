// Package experiment runs MOVE end to end — embed the external features, train the victim and
// benign models, steal the victim every way the simulator knows, train the white- and
// black-box meta-classifiers, verify every suspect — and gathers the figures of the paper's
// tables. Every stage writes its artefact atomically under the output folder with a record of
// the configuration that made it, and is skipped when a matching artefact is present, so an
// interrupted run continues where it stopped.
package experiment

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"maps"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"move/internal/atomicfile"
	"move/internal/buildinfo"
	"move/internal/classifier"
	"move/internal/data"
	"move/internal/features"
	"move/internal/innocent"
	"move/internal/meta"
	"move/internal/modelfile"
	"move/internal/models"
	"move/internal/stats"
	"move/internal/steal"
	"move/internal/style"
	"move/internal/train"
	"move/internal/verify"
	"move/internal/watermark"
)

// Config is one experiment.
type Config struct {
	Data    string  `json:"data"`  // data set (image folder root, CIFAR-10 binary dir, IDX dir, synthetic[:N])
	Style   string  `json:"style"` // style image
	Out     string  `json:"out"`
	Seed    uint64  `json:"seed"`
	Profile Profile `json:"profile"`
	Command string  `json:"command"`
	// ControlStyles are the control style images (empty: Profile.Controls procedural ones).
	ControlStyles []string `json:"control_styles,omitempty"`
	// Innocents is the size of the innocent suite (at least the profile's everyday ones);
	// InnocentONNX are innocent models trained elsewhere, verified as suspects too.
	Innocents    int      `json:"innocents,omitempty"`
	InnocentONNX []string `json:"innocent_onnx,omitempty"`
	// InnocentStudents adds, as innocents, a student of the independent control by each of
	// the thefts that train a student (distillation, zero-shot, label-query, logit-query):
	// the theft's recipe, data and sizes, a model made without the victim as the teacher. A
	// test that flags them sees the recipe of a theft, not the victim.
	InnocentStudents bool `json:"innocent_students,omitempty"`
	// FalseClaims simulates the dishonest claimant (claims.go) after the verification.
	FalseClaims bool `json:"false_claims,omitempty"`
	// Washing adds the washing attacks of the registry (steal.Attack.Washing: pruning,
	// fine-pruning, quantisation, distillation under strong augmentation, served fronts) as
	// suspects, after the multi-stage thefts.
	Washing bool `json:"washing,omitempty"`
	// StudentArch, when set, adds a label-query student of that architecture (another than
	// the victim's) as a suspect: the weight-gradient families cannot read it, the
	// input-gradient ones can.
	StudentArch string `json:"student_arch,omitempty"`
	// Adaptive are the shares of the owner's clean data with which the adaptive sweep washes
	// every student (adaptive.go); none: no sweep.
	Adaptive []float64 `json:"adaptive,omitempty"`
	// Defences are the baselines run beside MOVE on the same attacks (defences.go).
	Defences []string `json:"defences,omitempty"`
	// Detect runs the thief's detection studies (STRIP, Neural Cleanse) on the victims.
	Detect bool `json:"detect,omitempty"`
	// Features are the white-box feature families every suspect is verified with too, side by
	// side (families.go).
	Features []string `json:"features,omitempty"`
	// WhiteFamily is the white-box family of the table's verdict: style-gain-top (the default,
	// DefaultWhiteFamily), weights-same-init or weights (the paper's classifier). Run records
	// the choice.
	WhiteFamily string `json:"white_family,omitempty"`
	// Ablations verifies every suspect with MOVE's ablations too (ablation.go).
	Ablations bool `json:"ablations,omitempty"`
	// Draws, above 1, repeats the table's white-box test on that many draws of m key images
	// (the first is the verdict's) and records, per suspect, how many of them flag it
	// (Verdict.Draws): the test's power on a theft and its false-accusation rate on an
	// innocent, over the images an owner might have drawn, where the verdict is one draw.
	Draws int `json:"draws,omitempty"`
	// ONNX describes the external innocents' ONNX files when they carry no move metadata.
	ONNX *modelfile.ONNXDefaults `json:"onnx,omitempty"`
}

// onnx is what the experiment's loads assume of ONNX files without move metadata.
func (c Config) onnx() modelfile.ONNXDefaults {
	if c.ONNX == nil {
		return modelfile.ONNXDefaults{}
	}
	return *c.ONNX
}

// Verdict is one verification of one suspect in one mode.
type Verdict struct {
	P           float64 `json:"p_value"`
	DeltaMu     float64 `json:"delta_mu"`
	M           int     `json:"m"`
	Stolen      bool    `json:"stolen"`
	Verdict     string  `json:"verdict"` // stolen, not stolen, inconclusive; for a false claim also refused
	KeyAccuracy float64 `json:"key_accuracy"`
	// RefKeyAccuracy is the reference's accuracy on the same originals; Why says why a
	// verdict is inconclusive (or refused).
	RefKeyAccuracy float64 `json:"reference_key_accuracy"`
	Why            string  `json:"why,omitempty"`
	// UnspecificP is the paper's test on the owner's style alone (no contrast), for
	// comparison; -1 when the test had no contrast.
	UnspecificP float64 `json:"unspecific_p"`
	// MetaP is, when the verdict comes from the style-gain test, the meta-classifier's
	// contrast test (reference and specificity); -1 otherwise.
	MetaP       float64   `json:"meta_p"`
	ProbSuspect []float64 `json:"prob_suspect"`
	ProbBenign  []float64 `json:"prob_benign"`
	// Control probabilities (means over the control styles), when the test contrasts them.
	ControlSuspect []float64 `json:"control_suspect,omitempty"`
	ControlBenign  []float64 `json:"control_benign,omitempty"`
	// Rebuttals are the suspect's own earlier watermark styles that the style-gain test
	// counted as controls (verify.Options.Rebuttals), and UnrebuttedP its p-value without
	// them: what the statistics alone would have said.
	Rebuttals   []string `json:"rebuttals,omitempty"`
	UnrebuttedP float64  `json:"unrebutted_p,omitempty"`
	// Effect is the decisive test's standardized effect per key image (stats.EffectSize:
	// its statistic over the square root of N, the pairs it read), beyond its margin: what
	// says how many key images a test needs to see this suspect (stats.SamplesToReject).
	Effect float64 `json:"effect,omitempty"`
	N      int     `json:"n,omitempty"`
	// Draws is, with Config.Draws, the number of draws of m key images the test was repeated
	// on, DrawsFlagged how many gave p < alpha, and DrawsMedianP their median p-value.
	Draws        int     `json:"draws,omitempty"`
	DrawsFlagged int     `json:"draws_flagged,omitempty"`
	DrawsMedianP float64 `json:"draws_median_p,omitempty"`
}

// Row is one suspect of the table.
type Row struct {
	Attack    string  `json:"attack"`
	Label     string  `json:"label"`
	Arch      string  `json:"arch"`
	Accuracy  float64 `json:"accuracy"`
	Agreement float64 `json:"agreement"`
	Queries   int     `json:"queries"`
	Seconds   float64 `json:"seconds"`
	Stolen    bool    `json:"truly_stolen"` // ground truth: false for the independent model and the innocents
	Kind      string  `json:"innocent_kind,omitempty"`
	File      string  `json:"file,omitempty"`   // the suspect's model file (relative to OUT unless absolute)
	Served    string  `json:"served,omitempty"` // a degenerate model served over HTTP (constant, noise)
	// Families are the suspect's white-box verdicts under each feature family of
	// Config.Features.
	Families map[string]*Verdict `json:"families,omitempty"`
	// Ablations are the suspect's verdicts under MOVE's ablations (Config.Ablations).
	Ablations map[string]*Verdict `json:"ablations,omitempty"`
	// Front is the input transform (wash.ParseInput) behind which the thief serves File: the
	// suspect is verified through that service, black-box only.
	Front string   `json:"front,omitempty"`
	White *Verdict `json:"white"`
	Black *Verdict `json:"black"`
}

// verdict is the row's verdict in mode ("white" or "black"), nil when not tested.
func (r Row) verdict(mode string) *Verdict {
	if mode == features.White {
		return r.White
	}
	return r.Black
}

// ModelFigure is a trained victim or benign model.
type ModelFigure struct {
	Name     string  `json:"name"`
	File     string  `json:"file"`
	Accuracy float64 `json:"accuracy"`
	Seconds  float64 `json:"seconds"`
	Role     string  `json:"role"`
}

// Results is everything an experiment measured (results.json).
type Results struct {
	Version      string                 `json:"move_version"`
	Config       Config                 `json:"config"`
	Started      string                 `json:"started"`
	WallSeconds  float64                `json:"wall_seconds"`  // this invocation (short when stages were reused)
	StageSeconds float64                `json:"stage_seconds"` // what the stages took when they ran: the cost of the whole experiment
	Data         map[string]any         `json:"data"`
	Models       []ModelFigure          `json:"models"`
	Meta         map[string]meta.Info   `json:"meta"`
	Rows         []Row                  `json:"rows"`
	Stages       []StageRecord          `json:"stages"`
	Sweeps       map[string][]SweepItem `json:"sweeps,omitempty"`
	// Innocents summarises, per mode, how the test treated every innocent suspect (the
	// independent control and the innocent suite).
	Innocents map[string]innocent.Summary `json:"innocents,omitempty"`
	// Claims are the simulated false claims (Config.FalseClaims).
	Claims []ClaimResult `json:"false_claims,omitempty"`
	// Defences are the baseline defences' runs (Config.Defences), by name.
	Defences map[string]*DefenceResult `json:"defences,omitempty"`
	// Estimate is the predicted wall time of the whole experiment on this machine.
	Estimate *Estimate `json:"estimate,omitempty"`
	// Detections are the thief's detection studies (Config.Detect), per victim.
	Detections []Detection `json:"detections,omitempty"`
	Samples    []string    `json:"samples"` // styled sample images (relative paths)
	// Colour compares the key's originals with their styled versions (watermark.Colour);
	// Warnings are what the run found that may explain a verdict (its Warning).
	Colour   *watermark.Colour `json:"colour,omitempty"`
	Warnings []string          `json:"warnings,omitempty"`
}

// SweepItem is one point of a sweep (e.g. m = 20): the p-values of the copy and the
// independent model in both modes.
type SweepItem struct {
	Value float64            `json:"value"`
	Label string             `json:"label,omitempty"` // what the value stands for (a style sweep's image)
	P     map[string]float64 `json:"p"`               // "white/copy", "black/independent", ...
	// DeltaMu (same keys as P) and Accuracy (by suspect) where the sweep records them.
	DeltaMu  map[string]float64 `json:"delta_mu,omitempty"`
	Accuracy map[string]float64 `json:"accuracy,omitempty"`
	// Points are, in an m sweep, every suspect's white-box verdict at this m
	// ("white/Distill→FT", ...): the table re-verified with m key images.
	Points  map[string]SweepPoint `json:"points,omitempty"`
	Seconds float64               `json:"seconds"`
}

// SweepPoint is one suspect's verdict at one value of a sweep.
type SweepPoint struct {
	P       float64 `json:"p_value"`
	DeltaMu float64 `json:"delta_mu"`
	Verdict string  `json:"verdict"`      // stolen, not stolen, inconclusive
	Stolen  bool    `json:"truly_stolen"` // ground truth, as the row's
}

// StageRecord says what a stage did: its configuration hash, whether it ran or was reused,
// how long it took, and what it measured.
type StageRecord struct {
	Name    string          `json:"name"`
	Hash    string          `json:"hash"`
	Reused  bool            `json:"reused"`
	Seconds float64         `json:"seconds"`
	Result  json.RawMessage `json:"result,omitempty"`
	// Current is, for a record kept under the hash an earlier build computed (Hash), the
	// hash this build computes for the same work: a sweep folder that links the record
	// matches it.
	Current string `json:"current,omitempty"`
}

// Logger reports progress: a message per stage, and training status within one.
type Logger struct {
	Printf   func(format string, a ...any)
	Progress func(stage string, s train.Status)
}

type runner struct {
	ctx   context.Context
	cfg   Config
	log   Logger
	res   *Results
	clean *data.Set // the owner's clean training data
	test  *data.Set // the test images that judge every model
	thief *data.Set // the thief's own images
	norm  data.Normalization
	size  int
	base  string // hash of the stages up to the trained models: what attacks and metas depend on
	// rebuttal is, per procedural style, the rebuttal of the innocents watermarked with it.
	rebuttal map[int]verify.Rebuttal
}

func (r *runner) path(p ...string) string { return filepath.Join(append([]string{r.cfg.Out}, p...)...) }

func hashOf(v any) string {
	b, _ := json.Marshal(v)
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:8])
}

// stage runs do unless every artefact exists and the stage record beside the first matches
// conf; result is stored in the record and read back when the stage is skipped.
func (r *runner) stage(name string, conf any, artefacts []string, result any, do func() error) error {
	return r.stageCompat(name, conf, nil, artefacts, result, do)
}

// stageCompat is stage that also reuses a record written under one of legacy, the
// configurations earlier versions of move hashed for the same work (ones that named more
// than the work depends on), keeping its hash so that later stages of that folder stay valid
// too, and noting this build's hash in it (StageRecord.Current) for the sweep folders that
// link it. A legacy configuration matches a record's hash or the hash noted in it.
func (r *runner) stageCompat(name string, conf any, legacy []any, artefacts []string, result any, do func() error) error {
	h := hashOf(conf)
	recPath := r.path("stages", name+".json")
	rec := StageRecord{Name: name, Hash: h}
	if b, err := os.ReadFile(recPath); err == nil {
		var old StageRecord
		ok := json.Unmarshal(b, &old) == nil && (old.Hash == h || old.Current == h || slices.ContainsFunc(legacy, func(l any) bool {
			lh := hashOf(l)
			return old.Hash == lh || old.Current == lh
		}))
		for _, a := range artefacts {
			if _, err := os.Stat(a); err != nil {
				ok = false
			}
		}
		if ok && (result == nil || json.Unmarshal(old.Result, result) == nil) {
			if old.Hash != h && old.Current != h {
				old.Current = h // noted once, for the folders that will link this record
				b, _ := json.MarshalIndent(old, "", "  ")
				if err := atomicfile.WriteBytes(recPath, true, append(b, '\n')); err != nil {
					return err
				}
			}
			old.Reused = true
			r.res.Stages = append(r.res.Stages, old)
			if old.Hash != h {
				r.log.Printf("[%s] reused (configuration %s, recorded as %s by an earlier build)", name, h, old.Hash)
			} else {
				r.log.Printf("[%s] reused (configuration %s)", name, h)
			}
			return nil
		}
	}
	for _, a := range artefacts {
		os.RemoveAll(a) // a stale artefact of another configuration
	}
	r.log.Printf("[%s] running", name)
	t0 := time.Now()
	if err := do(); err != nil {
		return fmt.Errorf("stage %s: %w", name, err)
	}
	rec.Seconds = time.Since(t0).Seconds()
	if result != nil {
		rec.Result, _ = json.Marshal(result)
	}
	b, _ := json.MarshalIndent(rec, "", "  ")
	if err := atomicfile.WriteBytes(recPath, true, append(b, '\n')); err != nil {
		return err
	}
	r.res.Stages = append(r.res.Stages, rec)
	r.log.Printf("[%s] done in %s", name, time.Duration(rec.Seconds*float64(time.Second)).Round(time.Second))
	return nil
}

// Validate checks what a run can be asked for before anything is written: the profile
// (Profile.Validate) and its architecture, the defences, the table's white-box family (""
// is DefaultWhiteFamily) and draws.
func (cfg Config) Validate() error {
	p := cfg.Profile
	if err := p.Validate(); err != nil {
		return fmt.Errorf("profile %s: %w", p.Name, err)
	}
	if err := models.Known(p.Arch); err != nil {
		return err
	}
	for _, d := range cfg.Defences {
		if !slices.Contains(Defences, d) {
			return fmt.Errorf("unknown defence %q (known: %s)", d, strings.Join(Defences, ", "))
		}
	}
	white := cfg.whiteFamily()
	if !slices.Contains(WhiteFamilies, white) {
		return fmt.Errorf("the table's white-box family must be one of %s, got %q", strings.Join(WhiteFamilies, ", "), white)
	}
	if cfg.Draws > 1 && white == features.GainTop {
		return fmt.Errorf("draws repeat a meta-classifier's test on random draws of key images; %s reads the same top-ranked m every time: give a classifier family as the white-box one (--white-family %s)", features.GainTop, SameInitFamily)
	}
	return nil
}

// whiteFamily is the table's white-box family: Config.WhiteFamily, DefaultWhiteFamily when
// empty.
func (cfg Config) whiteFamily() string {
	if cfg.WhiteFamily == "" {
		return DefaultWhiteFamily
	}
	return cfg.WhiteFamily
}

// Run carries out the experiment and returns its results (also written to OUT/results.json).
func Run(ctx context.Context, cfg Config, log Logger) (*Results, error) {
	cfg.WhiteFamily = cfg.whiteFamily()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Join(cfg.Out, "stages"), 0o755); err != nil {
		return nil, err
	}
	start := time.Now()
	r := &runner{ctx: ctx, cfg: cfg, log: log, res: &Results{Version: buildinfo.Version, Config: cfg,
		Started: start.UTC().Format(time.RFC3339), Data: map[string]any{}, Meta: map[string]meta.Info{}}}
	steps := []func() error{r.prepareData, r.estimate, r.embed, r.trainModels, r.attacks, r.chains, r.washing, r.controls, r.innocents, r.metaAndVerify, r.families, r.ablations, r.adaptiveSweep, r.defences, r.detection, r.falseClaims}
	for _, s := range steps {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if err := s(); err != nil {
			return nil, err
		}
	}
	r.res.WallSeconds = time.Since(start).Seconds()
	for _, s := range r.res.Stages {
		r.res.StageSeconds += s.Seconds
	}
	b, _ := json.MarshalIndent(r.res, "", "  ")
	if err := atomicfile.WriteBytes(r.path("results.json"), true, append(b, '\n')); err != nil {
		return nil, err
	}
	return r.res, nil
}

// dataKey is how the data stage's configuration names the data set: a folder or file by its
// absolute path, so that the same set named from another directory, or by a relative path,
// reuses the stages already done (and does not discard them as another configuration's);
// anything else (synthetic, a name the data package resolves) as given.
func dataKey(src string) string {
	if _, err := os.Stat(src); err != nil {
		return src
	}
	if abs, err := filepath.Abs(src); err == nil {
		return abs
	}
	return src
}

// prepareData writes the profile's slice of the data set as an image folder (OUT/data): the
// owner's training images, the thief's own images and the test split. The thief's images come
// from the part of the training split the owner does not use (ThiefPerClass per class), or,
// when the profile asks for none or the data set has no such part, from a fixed half of the
// test split, the other half then judging every model.
func (r *runner) prepareData() error {
	p := r.cfg.Profile
	conf := map[string]any{"data": dataKey(r.cfg.Data), "train": p.TrainPerClass, "thief": p.ThiefPerClass, "test": p.TestPerClass, "size": p.Size, "v": 2}
	dir := r.path("data")
	err := r.stage("data", conf, []string{dir}, nil, func() error {
		tmp := r.path(".data.tmp")
		os.RemoveAll(tmp)
		train, err := data.Open(r.cfg.Data, "train", data.FolderOptions{Size: p.Size, PerClass: perClassSum(p.TrainPerClass, p.ThiefPerClass)})
		if err != nil {
			return err
		}
		owner, thief := splitPerClass(train, p.TrainPerClass, p.ThiefPerClass)
		if err := data.WriteFolder(train.Subset(owner), filepath.Join(tmp, "train")); err != nil {
			return err
		}
		if len(thief) > 0 {
			if err := data.WriteFolder(train.Subset(thief), filepath.Join(tmp, "thief")); err != nil {
				return err
			}
		}
		test, err := data.Open(r.cfg.Data, "test", data.FolderOptions{Size: p.Size, PerClass: p.TestPerClass})
		if err != nil {
			return err
		}
		if p.TestPerClass > 0 {
			test = test.Subset(test.PerClass(p.TestPerClass))
		}
		if err := data.WriteFolder(test, filepath.Join(tmp, "test")); err != nil {
			return err
		}
		return os.Rename(tmp, dir)
	})
	os.RemoveAll(r.path(".data.tmp"))
	if err != nil {
		return err
	}
	if r.clean, err = data.LoadFolder(filepath.Join(dir, "train"), data.FolderOptions{}); err != nil {
		return err
	}
	test, err := data.LoadFolder(filepath.Join(dir, "test"), data.FolderOptions{})
	if err != nil {
		return err
	}
	thiefData := "unused images of the training split (disjoint from the owner's training data)"
	if _, err := os.Stat(filepath.Join(dir, "thief")); err == nil {
		if r.thief, err = data.LoadFolder(filepath.Join(dir, "thief"), data.FolderOptions{}); err != nil {
			return err
		}
		r.test = test
	} else {
		r.thief, r.test = steal.SplitSubstitute(test)
		thiefData = "a fixed half of the test split (disjoint from the owner's training data); the other half evaluates every model"
		if p.ThiefPerClass > 0 {
			r.log.Printf("the training split has no images beyond the owner's: the thief gets half of the test split")
		}
	}
	r.norm = data.Stats(r.clean)
	r.size = r.clean.H
	r.res.Data = map[string]any{"source": r.cfg.Data, "classes": r.clean.Classes, "train_images": r.clean.Len(),
		"thief_images": r.thief.Len(), "eval_images": r.test.Len(), "size": r.size, "normalization": r.norm,
		"thief_data": thiefData}
	return nil
}

// perClassSum is how many images per class to read for the owner's and the thief's shares
// (0: all).
func perClassSum(owner, thief int) int {
	if owner <= 0 {
		return 0
	}
	return owner + max(0, thief)
}

// splitPerClass returns, per class in order, the indices of the first owner images (all when
// owner <= 0) and of up to thief images after them.
func splitPerClass(s *data.Set, owner, thief int) (own, th []int) {
	count := make([]int, len(s.Classes))
	for i, l := range s.Labels {
		switch {
		case owner <= 0 || count[l] < owner:
			own = append(own, i)
		case count[l] < owner+thief:
			th = append(th, i)
		}
		count[l]++
	}
	return own, th
}

func (r *runner) embed() error {
	p := r.cfg.Profile
	// The style image counts by its content, not its path: a moved output folder (which holds
	// the built-in style's copy) still resumes.
	sb, err := os.ReadFile(r.cfg.Style)
	if err != nil {
		return fmt.Errorf("style image: %w", err)
	}
	conf := map[string]any{"style_sha256": hashOf(sb), "rate": p.Rate, "opts": p.Style, "seed": r.cfg.Seed, "data": r.res.Stages[0].Hash}
	if p.FeedForward {
		conf["feedforward"] = style.DefaultFeed()
	}
	out := r.path("marked")
	if err := r.stage("embed", conf, []string{out}, nil, func() error {
		_, err := watermark.Embed(r.ctx, watermark.Options{Data: r.path("data"), StyleImage: r.cfg.Style, Out: out, Rate: p.Rate,
			Seed: r.cfg.Seed, Style: p.Style, Force: true, Command: r.cfg.Command, FeedForward: p.FeedForward, Feed: style.DefaultFeed(),
			Progress: func(done, total int, el time.Duration) {
				rate := float64(done) / el.Seconds()
				r.log.Progress("embed", train.Status{Step: done, Steps: total, ImgPerSec: rate,
					ETA: time.Duration(float64(total-done) / rate * float64(time.Second))})
			}})
		return err
	}); err != nil {
		return err
	}
	_, pairs, err := watermark.LoadKeyPairs(filepath.Join(out, "key.json"), 64)
	if err != nil {
		return err
	}
	colour := watermark.PairsColour(pairs)
	r.res.Colour = &colour
	if w := colour.Warning(); w != "" {
		r.res.Warnings = append(r.res.Warnings, w)
		r.log.Printf("warning: %s", w)
	}
	sheet, h, w := watermark.ContactSheet(pairs[:min(8, len(pairs))], 4, 3)
	if err := data.WritePNG(r.path("samples.png"), sheet, h, w, true); err != nil {
		return err
	}
	r.res.Samples = []string{"samples.png"}
	return nil
}

func (r *runner) recipe(epochs int, seed uint64) train.Config {
	c := train.Default()
	c.Epochs, c.Seed, c.Norm = epochs, seed, r.norm
	return c
}

func (r *runner) modelInfo(made, dataDesc string, seed uint64) modelfile.Info {
	return modelfile.Info{Classes: r.clean.Classes, InputSize: r.size, Norm: r.norm, Version: buildinfo.Version,
		Command: r.cfg.Command, Seed: seed, Made: made, Data: dataDesc}
}

// trainModels trains the victim on the watermarked set and the benign models on the clean
// one (other seeds).
func (r *runner) trainModels() error {
	p := r.cfg.Profile
	type job struct {
		name, role, dir string
		seed            uint64
	}
	jobs := []job{{"victim", "victim: trained on the watermarked set", r.path("marked"), r.victimSeed()}}
	for i := range p.Benign {
		role := "benign: trains the meta-classifier"
		if i == p.Benign-1 {
			role = "benign reference of the test (never seen by the meta-classifier)"
		}
		jobs = append(jobs, job{fmt.Sprintf("benign%d", i+1), role, r.path("data"), r.cfg.Seed + 101 + uint64(i)})
	}
	for _, j := range jobs {
		var fig ModelFigure
		file := r.path(j.name + ".safetensors")
		conf := map[string]any{"arch": p.Arch, "epochs": p.Epochs, "seed": j.seed, "upstream": r.upstream()}
		var legacy []any
		if j.name != "victim" {
			// The benign models never see the watermark: a new one (another style or way of
			// styling) reuses them. Earlier builds hashed everything upstream.
			conf, legacy = map[string]any{"arch": p.Arch, "epochs": p.Epochs, "seed": j.seed, "data": r.stageHash("data")}, []any{conf}
		}
		err := r.stageCompat("train-"+j.name, conf, legacy, []string{file}, &fig, func() error {
			set := r.clean
			if j.name == "victim" {
				var err error
				if set, err = data.LoadFolder(filepath.Join(j.dir, "train"), data.FolderOptions{}); err != nil {
					return err
				}
			}
			m, err := models.New(p.Arch, len(r.clean.Classes), j.seed)
			if err != nil {
				return err
			}
			res, err := train.Fit(r.ctx, m, set, r.recipe(p.Epochs, j.seed), train.Options{Checkpoint: file + ".ckpt",
				Info:     r.modelInfo("train", j.dir, j.seed),
				Progress: func(s train.Status) { r.log.Progress("train-"+j.name, s) }})
			if err != nil {
				return err
			}
			if err := modelfile.Save(file, m, r.modelInfo("train", j.dir, j.seed), true); err != nil {
				return err
			}
			os.Remove(file + ".ckpt")
			fig = ModelFigure{Name: j.name, File: j.name + ".safetensors", Accuracy: train.Accuracy(m, r.test, r.norm, 256), Seconds: res.Seconds, Role: j.role}
			return nil
		})
		if err != nil {
			return err
		}
		r.res.Models = append(r.res.Models, fig)
		r.log.Printf("%s: test accuracy %.2f%%", j.name, 100*fig.Accuracy)
	}
	r.base = r.upstream()
	return nil
}

// legacyUpstream is conf as earlier builds hashed a stage that depends on the data alone: with
// the hash of every stage up to the trained victim and benign models (r.base) in place of the
// data stage's.
func (r *runner) legacyUpstream(conf map[string]any) map[string]any {
	l := maps.Clone(conf)
	delete(l, "data")
	l["upstream"] = r.base
	return l
}

// victimSeed is the seed of the victim's initial weights and data order.
func (r *runner) victimSeed() uint64 { return r.cfg.Seed + 1 }

// upstream is the hash of every stage so far: a later stage reruns when an earlier one changed.
func (r *runner) upstream() string {
	var hs []string
	for _, s := range r.res.Stages {
		hs = append(hs, s.Hash)
	}
	return hashOf(hs)
}

// keyPairs reads every (original, styled) pair of the watermark key.
func (r *runner) keyPairs() ([]watermark.Pair, error) {
	_, pairs, err := watermark.LoadKeyPairs(r.path("marked", "key.json"), 0)
	return pairs, err
}

// load reads a model file of the experiment (or an external innocent's).
func (r *runner) load(file string) (classifier.Model, error) {
	m, _, err := classifier.Load(file, r.cfg.onnx())
	return m, err
}

// attacks steals the victim every way the registry knows and evaluates each suspect. Each
// attack trains with its recipe for the profile's epochs (attackEpochs), seeded by its place
// in the registry.
func (r *runner) attacks() error { return r.steal(false) }

// washing steals the victim with the washing attacks, when the configuration asks for them.
func (r *runner) washing() error {
	if !r.cfg.Washing {
		return nil
	}
	return r.steal(true)
}

// steal runs the attacks of the registry whose Washing is washing.
func (r *runner) steal(washing bool) error {
	v, err := r.load(r.path("victim.safetensors"))
	if err != nil {
		return err
	}
	if err := os.MkdirAll(r.path("suspects"), 0o755); err != nil {
		return err
	}
	src := r.sources()
	for i, a := range steal.Attacks() {
		if a.Washing != washing {
			continue
		}
		cfg := r.attackConfig(a, r.cfg.Seed+201+uint64(i))
		set, err := a.TrainingSet(src)
		if err != nil {
			return err
		}
		row := Row{Attack: a.Name, Label: a.Label, Stolen: a.Stolen, Front: a.Serve}
		if err := r.stealRow(v, a, cfg, set, row, a.Summary); err != nil {
			return err
		}
	}
	if !washing && r.cfg.StudentArch != "" {
		return r.crossArch(v)
	}
	return nil
}

// crossArch steals the victim by label queries into a model of Config.StudentArch.
func (r *runner) crossArch(v classifier.Model) error {
	a, err := steal.Lookup("labelquery")
	if err != nil {
		return err
	}
	if err := models.Known(r.cfg.StudentArch); err != nil {
		return err
	}
	set, err := a.TrainingSet(r.sources())
	if err != nil {
		return err
	}
	cfg := r.attackConfig(a, r.cfg.Seed+299)
	cfg.Arch = r.cfg.StudentArch
	row := Row{Attack: a.Name + "-" + cfg.Arch, Label: a.Label + " (" + cfg.Arch + ")", Stolen: a.Stolen}
	return r.stealRow(v, a, cfg, set, row, a.Summary+", into a "+cfg.Arch)
}

// stealRow steals the victim v with attack a's configuration cfg on set (a stage, file
// suspects/ATTACK.safetensors, ATTACK being row.Attack), serves the result as the attack says,
// measures it on the test set and adds row to the table.
func (r *runner) stealRow(v classifier.Model, a steal.Attack, cfg steal.Config, set *data.Set, row Row, summary string) error {
	name := row.Attack
	file := r.rowFile(row)
	conf := map[string]any{"cfg": cfg, "upstream": r.base}
	if a.Serve != "" {
		conf["serve"] = a.Serve
	}
	err := r.stage("steal-"+name, conf, []string{file}, &row, func() error {
		res, err := steal.Run(r.ctx, v, set, len(r.clean.Classes), cfg, nil, func(s train.Status) { r.log.Progress("steal-"+name, s) })
		if err != nil {
			return err
		}
		served, err := steal.Served(a, res.Model, r.norm, r.size)
		if err != nil {
			return err
		}
		acc, agree, err := steal.Evaluate(served, v, r.test)
		if err != nil {
			return err
		}
		row.Arch, row.Accuracy, row.Agreement, row.Queries, row.Seconds = res.Model.Arch(), acc, agree, res.Queries, res.Seconds
		info := r.modelInfo(name, summary, cfg.Train.Seed)
		info.Extra = map[string]any{"steal": row}
		return modelfile.Save(file, res.Model, info, true)
	})
	if err != nil {
		return err
	}
	r.res.Rows = append(r.res.Rows, row)
	r.log.Printf("%s: accuracy %.2f%%, agreement with the victim %.2f%%", name, 100*row.Accuracy, 100*row.Agreement)
	return nil
}

// attackConfig is attack a's configuration in this experiment: its recipe for the profile's
// epochs (attackEpochs), seeded by seed, and the profile's data-free sizes.
func (r *runner) attackConfig(a steal.Attack, seed uint64) steal.Config {
	p := r.cfg.Profile
	cfg := steal.Config{Attack: a.Name, Train: r.recipe(p.attackEpochs(a), seed), Temperature: 4}
	if a.Recipe != (steal.Recipe{}) {
		a.Recipe.Apply(&cfg.Train)
	}
	if a.Data == steal.Generated {
		cfg.ZeroShot = steal.ZeroShot{Iters: p.ZeroShotIters, Batch: p.ZeroShotBatch, Width: p.ZeroShotWidth, EvalEvery: max(1, p.ZeroShotIters/10)}
	}
	return cfg
}

// sources are the data sets the attacks choose from.
func (r *runner) sources() steal.Sources {
	return steal.Sources{Owner: r.clean, Thief: r.thief, Fraction: r.cfg.Profile.AdaptiveFraction, Seed: r.cfg.Seed}
}

// chains makes the multi-stage suspects: the suspect of each chain's first attack, stolen again
// by each later stage (with that attack's recipe and data, a seed of its own), judged against
// the original victim.
func (r *runner) chains() error {
	victim, err := r.load(r.path("victim.safetensors"))
	if err != nil {
		return err
	}
	src := r.sources()
	for i, ch := range steal.Chains() {
		file := r.path("suspects", ch.Name+".safetensors")
		row := Row{Attack: ch.Name, Label: ch.Label, Stolen: true}
		var cfgs []steal.Config
		for k, name := range ch.Stages[1:] {
			a, err := steal.Lookup(name)
			if err != nil {
				return err
			}
			cfgs = append(cfgs, r.attackConfig(a, r.cfg.Seed+301+uint64(10*i+k)))
		}
		conf := map[string]any{"stages": ch.Stages, "cfgs": cfgs, "first": r.stageHash("steal-" + ch.Stages[0]), "upstream": r.base}
		err := r.stage("chain-"+ch.Name, conf, []string{file}, &row, func() error {
			cur, err := r.load(r.path("suspects", ch.Stages[0]+".safetensors"))
			if err != nil {
				return err
			}
			var m models.Model
			start, queries := time.Now(), 0
			for k, cfg := range cfgs {
				a, _ := steal.Lookup(cfg.Attack)
				set, err := a.TrainingSet(src)
				if err != nil {
					return err
				}
				res, err := steal.Run(r.ctx, cur, set, len(r.clean.Classes), cfg, nil, func(s train.Status) { r.log.Progress("chain-"+ch.Name, s) })
				if err != nil {
					return fmt.Errorf("stage %d (%s): %w", k+2, cfg.Attack, err)
				}
				m, queries = res.Model, queries+res.Queries
				cur = classifier.Local(m, r.norm, r.size)
			}
			acc, agree, err := steal.Evaluate(cur, victim, r.test)
			if err != nil {
				return err
			}
			row.Arch, row.Accuracy, row.Agreement, row.Queries, row.Seconds = m.Arch(), acc, agree, queries, time.Since(start).Seconds()
			info := r.modelInfo(ch.Name, strings.Join(ch.Stages, " then "), cfgs[0].Train.Seed)
			info.Extra = map[string]any{"steal": row}
			return modelfile.Save(file, m, info, true)
		})
		if err != nil {
			return err
		}
		r.res.Rows = append(r.res.Rows, row)
		r.log.Printf("%s: accuracy %.2f%%, agreement with the victim %.2f%%", ch.Name, 100*row.Accuracy, 100*row.Agreement)
	}
	return nil
}

// metaAndVerify trains the two meta-classifiers against all benign models but the last, and
// tests every suspect against that last one, which the classifiers never saw.
func (r *runner) metaAndVerify() error {
	p := r.cfg.Profile
	victim, benign, ref, pairs, err := r.references()
	if err != nil {
		return err
	}
	suspects := make([]classifier.Model, len(r.res.Rows))
	for i, row := range r.res.Rows {
		m, stop, err := r.suspectModel(row)
		if err != nil {
			return fmt.Errorf("suspect %s: %w", row.Attack, err)
		}
		defer stop()
		suspects[i] = m
	}
	up := r.base
	var gainTop *meta.Classifier // the table's white-box family when it is style-gain-top
	if r.cfg.WhiteFamily == features.GainTop {
		if gainTop, err = r.gainTopRanking(features.GainTop, victim, nil, nil, benign, nil, nil, pairs); err != nil {
			return err
		}
	}
	for _, mode := range features.Modes {
		file := r.path("meta-" + mode + ".safetensors")
		mo, conf := r.metaOptions(mode, len(pairs), up)
		trainers := benign
		if mode == features.White && r.cfg.WhiteFamily == SameInitFamily {
			// Benign models from the victim's initial weights: lineage separates nothing.
			same, hashes, err := r.sameInitBenign()
			if err != nil {
				return err
			}
			trainers, conf["benign"] = same, hashes
		}
		info, err := r.metaStage("meta-"+mode, file, conf, victim, trainers, pairs, mo)
		if err != nil {
			return err
		}
		r.res.Meta[mode] = info
		r.log.Printf("%s-box meta-classifier: held-out accuracy %.3f", mode, info.HeldOutAcc)
		c, err := meta.Load(file)
		if err != nil {
			return err
		}
		start := time.Now()
		for i := range r.res.Rows {
			if err := r.ctx.Err(); err != nil {
				return err
			}
			row, s := &r.res.Rows[i], suspects[i]
			if mode == features.White && gainTop != nil {
				if s.Local != nil { // the white-box column: the suspects whose weights are at hand
					if row.White, err = r.gainTopVerdict(gainTop, row.Attack, s, ref, pairs); err != nil {
						return err
					}
				}
				continue
			}
			if mode == features.White {
				if row.White, err = r.verifyWhite(c, *row, s, ref, pairs, true); err != nil {
					return err
				}
				if r.cfg.Draws > 1 { // minutes of work: suspects per second and the time left
					done, el := i+1, time.Since(start).Seconds()
					r.log.Printf("white-box verdicts over %d draws: %d/%d suspects, %.1f s each, ETA %s", r.cfg.Draws, done, len(r.res.Rows), el/float64(done),
						time.Duration(float64(len(r.res.Rows)-done)*el/float64(done)*float64(time.Second)).Round(time.Second))
				}
				continue
			}
			o := r.cfg.testOptions(p.MBlack)
			o.Rebuttals = r.rebuttals(*row)
			res, err := verify.Run(c, s, ref, pairs, o)
			if err != nil {
				return fmt.Errorf("verifying %s (%s-box): %w", row.Attack, mode, err)
			}
			row.Black = verdictOf(res)
		}
	}
	r.res.Innocents = map[string]innocent.Summary{}
	for _, mode := range features.Modes {
		var outs []innocent.Outcome
		for _, row := range r.res.Rows {
			if v := row.verdict(mode); v != nil && !row.Stolen {
				o := innocent.Outcome{P: v.P, Accused: v.Stolen}
				if v.Verdict != verify.Inconclusive {
					o.Draws, o.DrawsAccused = v.Draws, v.DrawsFlagged
				}
				outs = append(outs, o)
			}
		}
		r.res.Innocents[mode] = innocent.Summarise(mode, outs)
	}
	return nil
}

// metaOptions are the options of the table's meta-classifier of a mode on a key of n pairs,
// and its stage's configuration on top of the stages whose hash is up.
func (r *runner) metaOptions(mode string, n int, up string) (verify.MetaOptions, map[string]any) {
	p := r.cfg.Profile
	fo := meta.Options{}
	if p.MetaHidden == "logistic" {
		fo.Hidden = []int{}
	}
	maxTrain := p.MetaTrain
	if mode == features.Black {
		maxTrain = p.MetaTrainBlack
		if maxTrain <= 0 {
			maxTrain = n
		}
	}
	mo := verify.MetaOptions{Mode: mode, Layout: features.Compressed, MaxTrain: maxTrain, Seed: r.cfg.Seed, Fit: fo}
	conf := map[string]any{"opts": mo, "hidden": p.MetaHidden, "upstream": up, "features": features.Form}
	if ctl := r.stageHash("controls"); ctl != "" {
		conf["controls"], conf["contrast"] = ctl, verify.Contrast
	}
	return mo, conf
}

// verdictOf is the table's record of one verification.
func verdictOf(res *verify.Result) *Verdict {
	up := -1.0
	if res.Unspecific != nil {
		up = res.Unspecific.P
	}
	mp := -1.0
	if res.Gain != nil {
		mp = math.Max(res.Test.P, res.Specificity.P)
	}
	v := &Verdict{MetaP: mp, UnspecificP: up, P: res.P, DeltaMu: res.DeltaMu, M: res.M, Stolen: res.Stolen, Verdict: res.Verdict, KeyAccuracy: res.KeyAccuracy,
		RefKeyAccuracy: res.RefKeyAccuracy, Why: res.Why, ProbSuspect: res.ProbSuspect, ProbBenign: res.ProbBenign, ControlSuspect: res.ControlSuspect, ControlBenign: res.ControlBenign}
	if res.GainUnrebutted != nil {
		v.Rebuttals, v.UnrebuttedP = res.Rebuttals, res.GainUnrebutted.P
	}
	t := res.Test
	if res.Gain != nil {
		t = *res.Gain
	}
	if e := stats.EffectSize(t); !math.IsNaN(e) && !math.IsInf(e, 0) {
		v.Effect, v.N = e, t.N
	}
	return v
}

// stageHash is the configuration hash of the named stage of this run ("" when it did not run).
func (r *runner) stageHash(name string) string {
	for _, s := range r.res.Stages {
		if s.Name == name {
			return s.Hash
		}
	}
	return ""
}
