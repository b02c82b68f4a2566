package experiment

import (
	"fmt"
	"os"
	"slices"

	"move/internal/classifier"
	"move/internal/modelfile"
	"move/internal/models"
	"move/internal/steal"
	"move/internal/train"
)

// The owner's extra models, which some white-box families train their classifier with: made
// by the owner from their own data, never suspects, each a stage (in OUT/owner/).

// sameInitBenign trains two benign models from the victim's initial weights (the victim's
// recipe on the owner's clean images, data order of their own): the negatives of the
// weights-same-init family. It returns them and their stages' hashes.
func (r *runner) sameInitBenign() ([]classifier.Model, []string, error) {
	p := r.cfg.Profile
	var out []classifier.Model
	var hashes []string
	if err := os.MkdirAll(r.path("owner"), 0o755); err != nil {
		return nil, nil, err
	}
	for i := range 2 {
		name := fmt.Sprintf("same-init-benign%d", i+1)
		file := r.path("owner", name+".safetensors")
		seed := r.cfg.Seed + 301 + uint64(i)
		var fig ModelFigure
		// Clean images and the victim's initial weights: a new watermark reuses them.
		conf := map[string]any{"arch": p.Arch, "epochs": p.Epochs, "init": r.victimSeed(), "seed": seed, "data": r.stageHash("data")}
		legacy := []any{r.legacyUpstream(conf)}
		err := r.stageCompat("owner-"+name, conf, legacy, []string{file}, &fig, func() error {
			m, err := models.New(p.Arch, len(r.clean.Classes), r.victimSeed())
			if err != nil {
				return err
			}
			info := r.modelInfo("train", "the owner's clean training images, from the victim's initial weights", seed)
			res, err := train.Fit(r.ctx, m, r.clean, r.recipe(p.Epochs, seed), train.Options{Checkpoint: file + ".ckpt", Info: info,
				Progress: func(s train.Status) { r.log.Progress("owner-"+name, s) }})
			if err != nil {
				return err
			}
			if err := modelfile.Save(file, m, info, true); err != nil {
				return err
			}
			os.Remove(file + ".ckpt")
			fig = ModelFigure{Name: name, File: "owner/" + name + ".safetensors", Accuracy: train.Accuracy(m, r.test, r.norm, 256), Seconds: res.Seconds,
				Role: "benign from the victim's initial weights: trains the weights-same-init classifier"}
			return nil
		})
		if err != nil {
			return nil, nil, err
		}
		m, err := r.load(file)
		if err != nil {
			return nil, nil, err
		}
		if !slices.ContainsFunc(r.res.Models, func(f ModelFigure) bool { return f.Name == fig.Name }) {
			r.res.Models = append(r.res.Models, fig) // once, though several families ask
		}
		out, hashes = append(out, m), append(hashes, r.stageHash("owner-"+name))
	}
	return out, hashes, nil
}

// ownerStudents distils two students of the victim (positives) and one of each benign model
// the classifiers train against, at least two (negatives): the distill attack's recipe on the
// owner's clean training images, with seeds of their own.
func (r *runner) ownerStudents(victim classifier.Model, benign []classifier.Model) (pos, neg []classifier.Model, hashes []string, err error) {
	a, err := steal.Lookup("distill")
	if err != nil {
		return nil, nil, nil, err
	}
	if err := os.MkdirAll(r.path("owner"), 0o755); err != nil {
		return nil, nil, nil, err
	}
	type job struct {
		name    string
		teacher classifier.Model
		of      string
		pos     bool
	}
	jobs := []job{{"victim-student1", victim, "victim", true}, {"victim-student2", victim, "victim", true}}
	for i := range max(2, len(benign)) {
		b := i % len(benign)
		jobs = append(jobs, job{fmt.Sprintf("benign-student%d", i+1), benign[b], fmt.Sprintf("benign%d", b+1), false})
	}
	for i, j := range jobs {
		file := r.path("owner", j.name+".safetensors")
		cfg := r.attackConfig(a, r.cfg.Seed+401+uint64(i))
		var fig ModelFigure
		conf := map[string]any{"cfg": cfg, "teacher": j.of, "upstream": r.base}
		var legacy []any
		if !j.pos { // a benign model's student depends on that model alone: a new watermark reuses it
			conf, legacy = map[string]any{"cfg": cfg, "teacher": j.of, "teacher_stage": r.stageHash("train-" + j.of)}, []any{conf}
		}
		err := r.stageCompat("owner-"+j.name, conf, legacy, []string{file}, &fig, func() error {
			res, err := steal.Run(r.ctx, j.teacher, r.clean, len(r.clean.Classes), cfg, nil, func(s train.Status) { r.log.Progress("owner-"+j.name, s) })
			if err != nil {
				return err
			}
			info := r.modelInfo("distill", "the owner's student of "+j.of+" (distillation on the owner's clean training images)", cfg.Train.Seed)
			if err := modelfile.Save(file, res.Model, info, true); err != nil {
				return err
			}
			role := "the owner's student of a benign model: a negative of the input-grad-students classifier"
			if j.pos {
				role = "the owner's student of the victim: a positive of the input-grad-students classifier"
			}
			fig = ModelFigure{Name: j.name, File: "owner/" + j.name + ".safetensors", Accuracy: train.Accuracy(res.Model, r.test, r.norm, 256), Seconds: res.Seconds, Role: role}
			return nil
		})
		if err != nil {
			return nil, nil, nil, err
		}
		m, err := r.load(file)
		if err != nil {
			return nil, nil, nil, err
		}
		if !slices.ContainsFunc(r.res.Models, func(f ModelFigure) bool { return f.Name == fig.Name }) {
			r.res.Models = append(r.res.Models, fig) // once, though a family and a defence both ask
		}
		hashes = append(hashes, r.stageHash("owner-"+j.name))
		if j.pos {
			pos = append(pos, m)
		} else {
			neg = append(neg, m)
		}
	}
	return pos, neg, hashes, nil
}
