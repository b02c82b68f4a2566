package experiment

import (
	"context"
	"fmt"
	"maps"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"move/internal/classifier"

	"move/internal/data"
	"move/internal/innocent"
	"move/internal/modelfile"
	"move/internal/models"
	"move/internal/oip"
	"move/internal/steal"
	"move/internal/style"
	"move/internal/train"
	"move/internal/verify"
	"move/internal/wash"
	"move/internal/watermark"
)

// controls styles part of the key's samples with the control styles (stage "controls"):
// what verification contrasts the owner's style with.
func (r *runner) controls() error {
	p := r.cfg.Profile
	if p.Controls < 0 {
		return nil
	}
	var hashes []string
	for _, f := range r.cfg.ControlStyles {
		b, err := os.ReadFile(f)
		if err != nil {
			return fmt.Errorf("control style image: %w", err)
		}
		hashes = append(hashes, hashOf(b))
	}
	conf := map[string]any{"styles": hashes, "count": p.Controls, "samples": p.ControlSamples, "opts": p.Style,
		"seed": r.cfg.Seed, "upstream": r.res.Stages[1].Hash}
	dir := r.path("marked", "controls")
	return r.stage("controls", conf, []string{dir}, nil, func() error {
		_, err := watermark.AddControls(r.ctx, r.path("marked", "key.json"), watermark.ControlOptions{
			Styles: r.cfg.ControlStyles, Count: p.Controls, Samples: p.ControlSamples, Seed: r.cfg.Seed, Style: p.Style, Force: true,
			Progress: func(done, total int, el time.Duration) {
				rate := float64(done) / el.Seconds()
				r.log.Progress("controls", train.Status{Step: done, Steps: total, ImgPerSec: rate,
					ETA: time.Duration(float64(total-done) / rate * float64(time.Second))})
			}})
		return err
	})
}

// innocentSpecs are the innocents of this run: the profile's everyday ones, or Config.Innocents
// when more are asked for.
func (r *runner) innocentSpecs() []innocent.Spec {
	n := max(r.cfg.Profile.Innocents, r.cfg.Innocents)
	return innocent.Plan(n, r.cfg.Profile.Arch, r.cfg.Seed, r.cfg.Profile.Controls)
}

// innocents makes every innocent suspect (one stage each) and appends their rows.
func (r *runner) innocents() error {
	p := r.cfg.Profile
	v, err := r.load(r.path("victim.safetensors"))
	if err != nil {
		return err
	}
	classes := len(r.clean.Classes)
	for _, sp := range r.innocentSpecs() {
		name := "innocent-" + sp.Name
		file := r.path("suspects", name+".safetensors")
		if sp.Kind == innocent.Constant || sp.Kind == innocent.Noise {
			file = "" // served, nothing to keep
		}
		row := Row{Attack: name, Label: sp.Name, Kind: sp.Kind, Served: servedKind(sp.Kind)}
		if file != "" {
			row.File = filepath.Join("suspects", name+".safetensors")
		}
		// An innocent never sees the owner's watermark or the victim: it depends on the data
		// alone (and one that carries another owner's watermark on the styling options), so a
		// new watermark (another style, strength or way of styling) reuses it. Its agreement
		// with the victim is a stage of its own.
		conf := map[string]any{"spec": sp, "epochs": p.Epochs, "ind_epochs": p.IndependentEpochs, "ft_epochs": p.FinetuneEpochs,
			"rate": p.Rate, "style": p.Style, "data": r.stageHash("data")}
		legacy := []any{maps.Clone(conf), r.legacyUpstream(conf)} // as earlier builds hashed every innocent
		if sp.Kind != innocent.OtherMark {
			delete(conf, "rate")
			delete(conf, "style")
		}
		var arts []string
		if file != "" {
			arts = []string{file}
		}
		err := r.stageCompat(name, conf, legacy, arts, &row, func() error {
			t0 := time.Now()
			m, err := r.makeInnocent(sp, classes)
			if err != nil {
				return err
			}
			row.Arch, row.Accuracy, row.Seconds = m.Arch(), train.Accuracy(m, r.test, r.norm, 256), time.Since(t0).Seconds()
			if file == "" {
				return nil
			}
			info := r.modelInfo("innocent:"+sp.Kind, innocent.Describe[sp.Kind], sp.Seed)
			info.Extra = map[string]any{"innocent": sp}
			return modelfile.Save(file, m, info, true)
		})
		if err != nil {
			return err
		}
		if err := r.agreement(name, v, &row.Agreement, func() (classifier.Model, error) {
			if file != "" {
				return r.load(file)
			}
			m, err := r.makeInnocent(sp, classes)
			if err != nil {
				return classifier.Model{}, err
			}
			return classifier.Local(m, r.norm, r.size), nil
		}); err != nil {
			return err
		}
		r.res.Rows = append(r.res.Rows, row)
		r.log.Printf("%s (%s): accuracy %.2f%%, agreement with the victim %.2f%%", name, sp.Kind, 100*row.Accuracy, 100*row.Agreement)
	}
	for i, f := range r.cfg.InnocentONNX {
		m, err := r.load(f)
		if err != nil {
			return fmt.Errorf("innocent model: %w", err)
		}
		acc, agree, err := steal.Evaluate(m, v, r.test)
		if err != nil {
			return fmt.Errorf("innocent model %s: %w", f, err)
		}
		r.res.Rows = append(r.res.Rows, Row{Attack: fmt.Sprintf("innocent-external-%d", i+1), Label: fmt.Sprintf("external-%d", i+1),
			Kind: innocent.External, File: f, Arch: m.Local.Arch(), Accuracy: acc, Agreement: agree})
		r.log.Printf("external innocent %s: accuracy %.2f%%, agreement with the victim %.2f%%", f, 100*acc, 100*agree)
	}
	if r.cfg.InnocentStudents {
		return r.innocentStudents(v)
	}
	return nil
}

// innocentStudents makes the innocent students (Config.InnocentStudents): each student theft
// (adaptiveStudents) run as the experiment runs it on the victim, with its recipe, data and
// sizes, on the independent control instead (a stage each, file
// suspects/innocent-student-ATTACK.safetensors, and one for its agreement with the victim),
// judged against the victim.
func (r *runner) innocentStudents(victim classifier.Model) error {
	teacherFile := r.path("suspects", "independent.safetensors")
	teacher, err := r.load(teacherFile)
	if err != nil {
		return fmt.Errorf("the innocent students' teacher (the independent control): %w", err)
	}
	src := r.sources()
	for i, name := range adaptiveStudents {
		a, err := steal.Lookup(name)
		if err != nil {
			return err
		}
		cfg := r.attackConfig(a, r.cfg.Seed+501+uint64(i))
		set, err := a.TrainingSet(src)
		if err != nil {
			return err
		}
		attack := "innocent-student-" + name
		file := r.path("suspects", attack+".safetensors")
		row := Row{Attack: attack, Label: "student-" + name, Kind: innocent.Student, File: filepath.Join("suspects", attack+".safetensors")}
		conf := map[string]any{"cfg": cfg, "teacher": r.stageHash("steal-independent"), "data": r.stageHash("data")}
		err = r.stage(attack, conf, []string{file}, &row, func() error {
			res, err := steal.Run(r.ctx, teacher, set, len(r.clean.Classes), cfg, nil, func(s train.Status) { r.log.Progress(attack, s) })
			if err != nil {
				return err
			}
			row.Arch, row.Accuracy, row.Queries, row.Seconds = res.Model.Arch(), train.Accuracy(res.Model, r.test, r.norm, 256), res.Queries, res.Seconds
			info := r.modelInfo("innocent:"+innocent.Student, a.Label+" of the independent control: "+innocent.Describe[innocent.Student], cfg.Train.Seed)
			info.Extra = map[string]any{"innocent": row}
			return modelfile.Save(file, res.Model, info, true)
		})
		if err != nil {
			return err
		}
		// The student depends on its teacher alone, so that a new victim reuses it.
		if err := r.agreement(attack, victim, &row.Agreement, func() (classifier.Model, error) { return r.load(file) }); err != nil {
			return err
		}
		r.res.Rows = append(r.res.Rows, row)
		r.log.Printf("%s (%s of the independent control): accuracy %.2f%%, agreement with the victim %.2f%%", attack, a.Label, 100*row.Accuracy, 100*row.Agreement)
	}
	return nil
}

// agreement measures innocent name's agreement with the victim on the test images (a stage
// of its own, agree-NAME, keyed on the innocent's stage and the victim's, so that a new victim
// reuses the innocent and measures only this again); model makes the innocent's model.
func (r *runner) agreement(name string, victim classifier.Model, out *float64, model func() (classifier.Model, error)) error {
	conf := map[string]any{"innocent": r.stageHash(name), "victim": r.stageHash("train-victim")}
	return r.stage("agree-"+name, conf, nil, out, func() error {
		s, err := model()
		if err != nil {
			return err
		}
		_, *out, err = steal.Evaluate(s, victim, r.test)
		return err
	})
}

func servedKind(kind string) string {
	if kind == innocent.Constant || kind == innocent.Noise {
		return kind
	}
	return ""
}

// makeInnocent builds (and trains) one innocent model.
func (r *runner) makeInnocent(sp innocent.Spec, classes int) (models.Model, error) {
	p := r.cfg.Profile
	if sp.Kind == innocent.Constant || sp.Kind == innocent.Noise {
		return innocent.NewDegenerate(sp.Kind, classes, sp.Seed)
	}
	init := sp.Seed
	if sp.Kind == innocent.VictimInit {
		init = r.victimSeed()
	}
	m, err := models.New(sp.Arch, classes, init)
	if err != nil {
		return nil, err
	}
	fit := func(set *data.Set, c train.Config) error {
		_, err := train.Fit(r.ctx, m, set, c, train.Options{Progress: func(s train.Status) { r.log.Progress("innocent-"+sp.Name, s) }})
		return err
	}
	switch sp.Kind {
	case innocent.Untrained:
		return m, nil
	case innocent.WellTrained:
		return m, fit(data.Concat(r.clean, r.thief), r.recipe(p.Epochs, sp.Seed))
	case innocent.Seed, innocent.Arch:
		return m, fit(r.thief, r.recipe(p.IndependentEpochs, sp.Seed))
	case innocent.OwnerData, innocent.VictimInit:
		return m, fit(r.clean, r.recipe(p.Epochs, sp.Seed))
	case innocent.Finetuned:
		if err := fit(r.thief, r.recipe(p.IndependentEpochs, sp.Seed)); err != nil {
			return nil, err
		}
		c := r.recipe(p.FinetuneEpochs, sp.Seed+1)
		c.LR = 0.01
		return m, fit(r.clean, c)
	case innocent.OtherMark:
		set, err := r.otherMark(sp.Style)
		if err != nil {
			return nil, err
		}
		return m, fit(set, r.recipe(p.Epochs, sp.Seed))
	}
	return nil, fmt.Errorf("unknown innocent kind %q", sp.Kind)
}

// otherMark is the owner's clean training set watermarked by someone else: styled at the
// profile's rate with procedural style k (built once per style, in OUT/other-marks/K).
func (r *runner) otherMark(k int) (*data.Set, error) {
	p := r.cfg.Profile
	dir := r.path("other-marks", fmt.Sprint(k))
	conf := map[string]any{"style": k, "rate": p.Rate, "opts": p.Style, "seed": r.cfg.Seed + uint64(k), "data": r.res.Stages[0].Hash}
	err := r.stage(fmt.Sprintf("other-mark-%d", k), conf, []string{dir}, nil, func() error {
		pix, h, w := style.Control(k)
		png, err := data.EncodePNG(pix, h, w)
		if err != nil {
			return err
		}
		sf := r.path("other-marks", fmt.Sprintf("style-%d.png", k))
		if err := os.MkdirAll(filepath.Dir(sf), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(sf, png, 0o644); err != nil {
			return err
		}
		_, err = watermark.Embed(r.ctx, watermark.Options{Data: r.path("data"), StyleImage: sf, Out: dir, Rate: p.Rate,
			Seed: r.cfg.Seed + uint64(k), Style: p.Style, Force: true, Command: r.cfg.Command,
			Progress: func(done, total int, el time.Duration) {
				rate := float64(done) / el.Seconds()
				r.log.Progress(fmt.Sprintf("other-mark-%d", k), train.Status{Step: done, Steps: total, ImgPerSec: rate,
					ETA: time.Duration(float64(total-done) / rate * float64(time.Second))})
			}})
		return err
	})
	if err != nil {
		return nil, err
	}
	return data.LoadFolder(filepath.Join(dir, "train"), data.FolderOptions{})
}

// rebuttals are, for an innocent that carries its own MOVE watermark (someone else's, made
// before the owner's), that watermark's style: in a dispute its owner shows it with their
// registration record, and the style-gain test counts it as a control (verify.Rebuttal).
// Other suspects have none. Each style's rebuttal is made once a run and remembers what it
// restyled, as otherMark embedded it (procedural style k, the profile's transfer).
func (r *runner) rebuttals(row Row) []verify.Rebuttal {
	if row.Kind != innocent.OtherMark {
		return nil
	}
	for _, sp := range r.innocentSpecs() {
		if "innocent-"+sp.Name != row.Attack {
			continue
		}
		k := sp.Style
		rb, ok := r.rebuttal[k]
		if !ok {
			rb = verify.Rebuttal{Name: fmt.Sprintf("its own watermark style (procedural style %d)", k), Apply: func(imgs [][]uint8, h, w int) ([][]uint8, error) {
				pix, sh, sw := style.Control(k)
				tr, err := style.New(pix, sh, sw, r.cfg.Profile.Style)
				if err != nil {
					return nil, err
				}
				return tr.Apply(imgs, h, w), nil
			}}.Memoised()
			if r.rebuttal == nil {
				r.rebuttal = map[int]verify.Rebuttal{}
			}
			r.rebuttal[k] = rb
		}
		return []verify.Rebuttal{rb}
	}
	return nil
}

// served runs a degenerate model behind a real Open Inference Protocol server on a free
// loopback port and returns a client for it and a function that stops the server.
func served(ctx context.Context, kind string, classes, size int, seed uint64, norm data.Normalization) (*oip.Client, func(), error) {
	m, err := innocent.NewDegenerate(kind, classes, seed)
	if err != nil {
		return nil, nil, err
	}
	return serveOIP(ctx, &oip.Server{Name: kind, Model: classifier.Local(m, norm, size)})
}

// serveOIP runs srv on a free loopback port and returns a client for its model and a
// function that stops it.
func serveOIP(ctx context.Context, srv0 *oip.Server) (*oip.Client, func(), error) {
	kind := srv0.Name
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, nil, err
	}
	srv := &http.Server{Handler: srv0.Handler(), ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(ln)
	stop := func() { srv.Close() }
	c, err := oip.Dial(ctx, fmt.Sprintf("http://%s/v2/models/%s", ln.Addr(), kind), 30*time.Second)
	if err != nil {
		stop()
		return nil, nil, fmt.Errorf("the served %s model: %w", kind, err)
	}
	return c, stop, nil
}

// rowFile is the path of a row's model file: Row.File (under OUT unless absolute), or the
// attack's file in OUT/suspects.
func (r *runner) rowFile(row Row) string {
	f := row.File
	if f == "" {
		f = filepath.Join("suspects", row.Attack+".safetensors")
	}
	if !filepath.IsAbs(f) {
		f = r.path(f)
	}
	return f
}

// suspectModel loads the suspect of a row: its file (served behind its front when it has
// one), or a served degenerate model.
func (r *runner) suspectModel(row Row) (classifier.Model, func(), error) {
	if row.Served != "" {
		c, stop, err := served(r.ctx, row.Served, len(r.clean.Classes), r.size, r.cfg.Seed, r.norm)
		if err != nil {
			return classifier.Model{}, nil, err
		}
		return classifier.Remote(c, r.size), stop, nil
	}
	m, err := r.load(r.rowFile(row))
	if err != nil {
		return classifier.Model{}, nil, err
	}
	if row.Front != "" {
		front, err := wash.NewInput(m, row.Front)
		if err != nil {
			return classifier.Model{}, nil, err
		}
		c, stop, err := serveOIP(r.ctx, &oip.Server{Name: row.Attack, Model: m, Front: front})
		if err != nil {
			return classifier.Model{}, nil, err
		}
		return classifier.Remote(c, r.size), stop, nil
	}
	return m, func() {}, nil
}
