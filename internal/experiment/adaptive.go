package experiment

import (
	"fmt"
	"os"

	"move/internal/classifier"
	"move/internal/features"
	"move/internal/modelfile"
	"move/internal/steal"
	"move/internal/train"
)

// adaptiveStudents are the students the adaptive sweep washes (the paper's Figure 6).
var adaptiveStudents = []string{"distill", "zeroshot", "labelquery", "logitquery"}

// adaptiveSweep is the paper's Figure 6 on every student: each student of the experiment
// fine-tuned, with the adaptive attack's recipe, on a share of the owner's clean training
// data (Config.Adaptive; 0 is the student as stolen), one resumable stage per student and
// share, then verified in both modes. It records p-value, delta-mu and the washed model's
// accuracy per share as the sweep "adaptive".
func (r *runner) adaptiveSweep() error {
	if len(r.cfg.Adaptive) == 0 {
		return nil
	}
	victim, _, ref, pairs, err := r.references()
	if err != nil {
		return err
	}
	tests := map[string]tableTest{}
	for _, mode := range features.Modes {
		if tests[mode], err = r.tableTest(mode); err != nil {
			return err
		}
	}
	rows := map[string]Row{}
	for _, row := range r.res.Rows {
		rows[row.Attack] = row
	}
	wash, err := steal.Lookup("adaptive")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(r.path("adaptive"), 0o755); err != nil {
		return err
	}
	var items []SweepItem
	for k, share := range r.cfg.Adaptive {
		if !(share >= 0 && share <= 1) {
			return fmt.Errorf("adaptive share %g: want [0, 1]", share)
		}
		item := SweepItem{Value: share, P: map[string]float64{}, DeltaMu: map[string]float64{}, Accuracy: map[string]float64{}}
		for si, name := range adaptiveStudents {
			if err := r.ctx.Err(); err != nil {
				return err
			}
			student, err := steal.Lookup(name)
			if err != nil {
				return err
			}
			file := r.path("suspects", name+".safetensors")
			acc := rows[name].Accuracy
			if share > 0 {
				file = r.path("adaptive", fmt.Sprintf("%s-%g.safetensors", name, share))
				cfg := r.attackConfig(wash, r.cfg.Seed+401+uint64(10*k+si))
				src := r.sources()
				src.Fraction, src.Seed = share, r.cfg.Seed+uint64(k)
				set, err := wash.TrainingSet(src)
				if err != nil {
					return err
				}
				var fig Row
				stage := fmt.Sprintf("adaptive-%s-%g", name, share)
				conf := map[string]any{"cfg": cfg, "share": share, "student": r.stageHash("steal-" + name), "upstream": r.base}
				err = r.stage(stage, conf, []string{file}, &fig, func() error {
					st, err := r.load(r.path("suspects", name+".safetensors"))
					if err != nil {
						return err
					}
					res, err := steal.Run(r.ctx, st, set, len(r.clean.Classes), cfg, nil, func(s train.Status) { r.log.Progress(stage, s) })
					if err != nil {
						return err
					}
					acc, agree, err := steal.Evaluate(classifier.Local(res.Model, r.norm, r.size), victim, r.test)
					if err != nil {
						return err
					}
					fig = Row{Attack: name, Label: student.Label, Arch: res.Model.Arch(), Accuracy: acc, Agreement: agree, Seconds: res.Seconds, Stolen: true}
					info := r.modelInfo(stage, fmt.Sprintf("%s fine-tuned on %g of the owner's clean data", name, share), cfg.Train.Seed)
					info.Extra = map[string]any{"steal": fig}
					return modelfile.Save(file, res.Model, info, true)
				})
				if err != nil {
					return err
				}
				acc = fig.Accuracy
			}
			s, err := r.load(file)
			if err != nil {
				return err
			}
			item.Accuracy[student.Label] = acc
			for _, mode := range features.Modes {
				res, err := tests[mode].run(s, ref, pairs, 0)
				if err != nil {
					return fmt.Errorf("verifying %s washed with %g of the clean data (%s-box): %w", name, share, mode, err)
				}
				if res == nil {
					continue
				}
				item.P[mode+"/"+student.Label] = res.P
				item.DeltaMu[mode+"/"+student.Label] = res.DeltaMu
			}
			r.log.Printf("adaptive %g: %s accuracy %.2f%%, white p %s, black p %s", share, name, 100*acc,
				pOf(item.P, features.White+"/"+student.Label), pOf(item.P, features.Black+"/"+student.Label))
		}
		items = append(items, item)
	}
	if r.res.Sweeps == nil {
		r.res.Sweeps = map[string][]SweepItem{}
	}
	r.res.Sweeps["adaptive"] = items
	return nil
}

// pOf is the p-value under k, or "-" when the sweep has none.
func pOf(m map[string]float64, k string) string {
	if v, ok := m[k]; ok {
		return fmt.Sprintf("%.3g", v)
	}
	return "-"
}
