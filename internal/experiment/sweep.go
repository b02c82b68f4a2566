package experiment

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"move/internal/classifier"
	"move/internal/features"
	"move/internal/meta"
	"move/internal/verify"
	"move/internal/watermark"
)

// Sweep is a parameter and the values it takes (the paper's Figure 4: the transformation
// rate gamma and the number of verification samples m; its Figure 6: the share of clean data
// with which the adaptive attack washes each student).
type Sweep struct {
	Name   string    // "rate", "m", "adaptive" or "style"
	Values []float64 // e.g. 0.05, 0.1, 0.2 (for styles: 1, 2, ...)
	Styles []string  // the style sweep's images, in Values' order
}

// ParseSweep reads "rate=0.05,0.1,0.2", "m=10,20,50", "adaptive=0,0.05,0.1,0.15,0.2" or
// "style=a.jpg,b.jpg" (style images; each must exist).
func ParseSweep(s string) (Sweep, error) {
	name, list, ok := strings.Cut(s, "=")
	if !ok || (name != "rate" && name != "m" && name != "adaptive" && name != "style") {
		return Sweep{}, fmt.Errorf("sweep %q: want rate=V1,V2,..., m=V1,V2,..., adaptive=V1,V2,... or style=IMAGE1,IMAGE2,...", s)
	}
	sw := Sweep{Name: name}
	if name == "style" {
		for i, f := range strings.Split(list, ",") {
			if _, err := os.Stat(f); err != nil {
				return Sweep{}, fmt.Errorf("sweep %q: style image: %w", s, err)
			}
			sw.Styles = append(sw.Styles, f)
			sw.Values = append(sw.Values, float64(i+1))
		}
		return sw, nil
	}
	for _, f := range strings.Split(list, ",") {
		v, err := strconv.ParseFloat(strings.TrimSpace(f), 64)
		bad := err != nil || !(v > 0) || (name == "rate" && v > 1) || (name == "m" && (v < 2 || v != float64(int(v))))
		if name == "adaptive" {
			bad = err != nil || !(v >= 0 && v <= 1)
		}
		if bad {
			return Sweep{}, fmt.Errorf("sweep %q: %q is not a valid %s", s, f, name)
		}
		sw.Values = append(sw.Values, v)
	}
	return sw, nil
}

// sweptRows are the suspects whose p-values a sweep follows.
var sweptRows = []string{"copy", "independent"}

// RunSweep runs a sweep after the main experiment and adds it to res.Sweeps. A rate sweep runs
// the whole pipeline once per rate in OUT/sweep-rate-V (resumable like the main run); an m
// sweep re-verifies every suspect of res white-box with m samples (mSweep), reusing the
// meta-classifiers.
func RunSweep(ctx context.Context, cfg Config, res *Results, sw Sweep, log Logger) error {
	if res.Sweeps == nil {
		res.Sweeps = map[string][]SweepItem{}
	}
	if sw.Name == "adaptive" {
		// One more run of the experiment in its own folder: every stage is reused, and the
		// adaptive stages wash each student once per share.
		sub := cfg
		sub.Adaptive = sw.Values
		r, err := Run(ctx, sub, log)
		if err != nil {
			return fmt.Errorf("sweep adaptive: %w", err)
		}
		res.Sweeps[sw.Name] = r.Sweeps[sw.Name]
		return nil
	}
	var items []SweepItem
	var ms *mSweep // an m sweep's key, reference, tests and suspects, loaded at its first value
	for _, v := range sw.Values {
		t0 := time.Now()
		item := SweepItem{Value: v, P: map[string]float64{}}
		switch sw.Name {
		case "style":
			st := sw.Styles[int(v)-1]
			abs, err := filepath.Abs(st)
			if err != nil {
				return err
			}
			item.Label = strings.TrimSuffix(filepath.Base(st), filepath.Ext(st))
			sub := cfg
			sub.Out = filepath.Join(cfg.Out, "sweep-style-"+item.Label)
			sub.Style = abs
			if sub.ControlStyles, err = swapControl(cfg.ControlStyles, abs, cfg.Style); err != nil {
				return err
			}
			sub.Profile.Innocents, sub.Innocents, sub.InnocentONNX, sub.FalseClaims = 0, 0, nil, false
			sub.Washing, sub.Adaptive, sub.Defences, sub.Detect, sub.Ablations, sub.Features = false, nil, nil, false, false, nil
			shareBenign(cfg.Out, sub.Out)
			log.Printf("sweep style = %s in %s", st, sub.Out)
			r, err := Run(ctx, sub, log)
			if err != nil {
				return fmt.Errorf("sweep style = %s: %w", st, err)
			}
			item.Accuracy = map[string]float64{}
			for _, m := range r.Models {
				if m.Name == "victim" {
					item.Accuracy["victim"] = m.Accuracy
				}
			}
			for _, row := range r.Rows {
				if !row.Stolen && row.Attack != "independent" {
					continue
				}
				if row.White != nil {
					item.P["white/"+row.Label] = row.White.P
				}
				if row.Black != nil {
					item.P["black/"+row.Label] = row.Black.P
				}
			}
		case "rate":
			sub := cfg
			sub.Out = filepath.Join(cfg.Out, fmt.Sprintf("sweep-rate-%g", v))
			sub.Profile.Rate = v
			// A sweep follows the copy and the independent model: no innocent suite, no
			// false claims.
			sub.Profile.Innocents, sub.Innocents, sub.InnocentONNX, sub.FalseClaims = 0, 0, nil, false
			sub.Washing, sub.Adaptive, sub.Defences, sub.Detect, sub.Ablations, sub.Features = false, nil, nil, false, false, nil
			shareBenign(cfg.Out, sub.Out)
			log.Printf("sweep rate = %g in %s", v, sub.Out)
			r, err := Run(ctx, sub, log)
			if err != nil {
				return fmt.Errorf("sweep rate = %g: %w", v, err)
			}
			for _, row := range r.Rows {
				for _, name := range sweptRows {
					if row.Attack != name {
						continue
					}
					if row.White != nil {
						item.P["white/"+row.Label] = row.White.P
					}
					if row.Black != nil {
						item.P["black/"+row.Label] = row.Black.P
					}
				}
			}
		case "m":
			if ms == nil {
				var err error
				if ms, err = newMSweep(ctx, cfg, res); err != nil {
					return err
				}
			}
			if err := ms.run(ctx, int(v), &item); err != nil {
				return err
			}
		}
		item.Seconds = time.Since(t0).Seconds()
		items = append(items, item)
	}
	res.Sweeps[sw.Name] = items
	return nil
}

// mSweep is what every value of an m sweep reads, loaded once: the key, the reference, the
// table's tests (tableTest) and the suspects of the table whose weights the run holds (served
// ones are left out: the sweep starts no servers).
type mSweep struct {
	pairs  []watermark.Pair
	ref    classifier.Model
	tests  map[string]tableTest
	rows   []Row
	models []classifier.Model
}

func newMSweep(ctx context.Context, cfg Config, res *Results) (*mSweep, error) {
	r := &runner{ctx: ctx, cfg: cfg}
	w := &mSweep{tests: map[string]tableTest{}}
	var err error
	if w.pairs, err = r.keyPairs(); err != nil {
		return nil, err
	}
	if w.ref, err = r.load(r.path(fmt.Sprintf("benign%d.safetensors", cfg.Profile.Benign))); err != nil {
		return nil, err
	}
	for _, mode := range features.Modes {
		if w.tests[mode], err = r.tableTest(mode); err != nil {
			return nil, err
		}
	}
	for _, row := range res.Rows {
		if row.Served != "" || row.Front != "" {
			continue
		}
		s, err := r.load(r.rowFile(row))
		if err != nil {
			return nil, err
		}
		w.rows, w.models = append(w.rows, row), append(w.models, s)
	}
	return w, nil
}

// run re-verifies with m key images every suspect white-box (item.Points) and the copy and the
// independent model in both modes (item.P). The black-box verdict's style-gain test reads
// every held-out key sample, so m moves only its meta-classifier's test: the sweep does not
// re-verify every suspect black-box.
func (w *mSweep) run(ctx context.Context, m int, item *SweepItem) error {
	item.Points = map[string]SweepPoint{}
	for i, row := range w.rows {
		if err := ctx.Err(); err != nil {
			return err
		}
		swept := slices.Contains(sweptRows, row.Attack)
		for _, mode := range features.Modes {
			if mode == features.Black && !swept {
				continue
			}
			v, err := w.tests[mode].run(w.models[i], w.ref, w.pairs, m)
			if err != nil {
				return fmt.Errorf("m = %d, %s (%s-box): %w", m, row.Label, mode, err)
			}
			if v == nil {
				continue
			}
			key := mode + "/" + row.Label
			if mode == features.White {
				item.Points[key] = SweepPoint{P: v.P, DeltaMu: v.DeltaMu, Verdict: v.Verdict, Stolen: row.Stolen}
			}
			if swept {
				item.P[key] = v.P
			}
		}
	}
	return nil
}

// tableTest is the test behind the table's verdicts in one mode, for runs that verify more
// suspects after the table (the sweeps): black-box, the black-box meta-classifier's; white-box,
// the table's family: style-gain-top's ranking (verify.GainTop, any architecture), or the
// white-box meta-classifier (verify.Run, suspects whose weights line up with it).
type tableTest struct {
	c       *meta.Classifier
	mode    string
	gainTop bool
	o       verify.Options
}

// tableTest loads the test of mode as the table ran it (metaAndVerify, gainTopVerdict).
func (r *runner) tableTest(mode string) (tableTest, error) {
	p := r.cfg.Profile
	t := tableTest{mode: mode, gainTop: mode == features.White && r.cfg.whiteFamily() == features.GainTop}
	file := "meta-" + mode + ".safetensors"
	if t.gainTop {
		file = "meta-white-" + features.GainTop + ".safetensors"
		t.o = gainTopOptions(p)
	} else {
		t.o = r.cfg.testOptions(p.mOf(mode))
	}
	var err error
	if t.c, err = meta.Load(r.path(file)); err != nil {
		return tableTest{}, err
	}
	return t, nil
}

// run verifies suspect s against ref with m images (0: the table's m); nil, nil when the
// test cannot read s (white-box: served, or weights that do not line up with the classifier).
func (t tableTest) run(s, ref classifier.Model, pairs []watermark.Pair, m int) (*verify.Result, error) {
	o := t.o
	if m > 0 {
		o.M = m
	}
	if t.mode == features.White {
		if s.Local == nil {
			return nil, nil
		}
		if t.gainTop {
			return verify.GainTop(t.c, s, ref, pairs, o)
		}
		if _, err := verify.Compatible(t.c, s, pairs); err != nil {
			return nil, nil
		}
	}
	return verify.Run(t.c, s, ref, pairs, o)
}

// shareBenign hard-links the models of the experiment in from that never see the watermark
// (the benign models, the owner's benign models from the victim's initial weights and the
// owner's students of benign models), and their stage records, into the sweep folder to when
// it has none: a sweep over the watermark's style or rate reuses them (the run checks their
// configuration as for any stage, and retrains them when it differs). Where linking fails
// (another file system), the sweep trains its own.
func shareBenign(from, to string) {
	for _, g := range []struct{ stages, prefix, dir string }{
		{"train-benign*.json", "train-", ""},
		{"owner-same-init-benign*.json", "owner-", "owner"},
		{"owner-benign-student*.json", "owner-", "owner"},
	} {
		recs, _ := filepath.Glob(filepath.Join(from, "stages", g.stages))
		for _, rec := range recs {
			name := strings.TrimSuffix(strings.TrimPrefix(filepath.Base(rec), g.prefix), ".json")
			model := filepath.Join(from, g.dir, name+".safetensors")
			dst := filepath.Join(to, g.dir, name+".safetensors")
			if _, err := os.Stat(dst); err == nil {
				continue
			}
			if os.MkdirAll(filepath.Join(to, "stages"), 0o755) != nil || os.MkdirAll(filepath.Dir(dst), 0o755) != nil {
				return
			}
			if os.Link(model, dst) != nil {
				continue
			}
			if os.Link(rec, filepath.Join(to, "stages", filepath.Base(rec))) != nil {
				os.Remove(dst)
			}
		}
	}
}

// swapControl is the control styles of a sweep run whose owner's style is style: a control
// image with the same content as style (a sweep over the run's own control images) gives its
// place to the parent run's style, so that the owner's style is never its own control.
func swapControl(controls []string, style, parent string) ([]string, error) {
	want, err := os.ReadFile(style)
	if err != nil {
		return nil, fmt.Errorf("style image: %w", err)
	}
	out := append([]string(nil), controls...)
	for i, c := range out {
		b, err := os.ReadFile(c)
		if err != nil {
			return nil, fmt.Errorf("control style image: %w", err)
		}
		if bytes.Equal(b, want) {
			out[i] = parent
		}
	}
	return out, nil
}
