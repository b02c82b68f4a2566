package experiment

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"

	"move/internal/atomicfile"
	"move/internal/classifier"
	"move/internal/conferrable"
)

// Conferrable is the fingerprint of conferrable adversarial examples (Lukas et al., ICLR
// 2021; package conferrable), the baseline built to recognise students without a watermark.
const Conferrable = "conferrable"

// conferrableFit is what the fingerprint's stage records: how the owner's own models answer
// the targets on the examples (mean probability), the measure of how specific they came out.
type conferrableFit struct {
	Examples   int     `json:"examples"`
	Victim     float64 `json:"victim"`
	Surrogates float64 `json:"owner_victim_students"`
	References float64 `json:"references"`
	Reference  float64 `json:"test_reference"` // the test's reference, which made no example
}

// conferrableFingerprint makes the fingerprint on MOVE's own victim (no watermark of its own:
// the same victim, suspects and reference as MOVE's table), from the profile's black-box m of
// the owner's clean training images: the surrogates are the owner's two students of the
// victim, the references the benign models the meta-classifiers train against and the owner's
// students of them (the input-grad-students family's models, trained once for both). Every
// suspect is then tested against MOVE's reference, margin the profile's, on its answers only.
func (r *runner) conferrableFingerprint() error {
	p := r.cfg.Profile
	victim, err := r.load(r.path("victim.safetensors"))
	if err != nil {
		return err
	}
	benign, ref, err := r.benignModels()
	if err != nil {
		return err
	}
	pos, neg, hashes, err := r.ownerStudents(victim, benign)
	if err != nil {
		return err
	}
	refs := append(append([]classifier.Model{}, benign...), neg...)
	var benignHashes []string
	for i := range benign {
		benignHashes = append(benignHashes, r.stageHash(fmt.Sprintf("train-benign%d", i+1)))
	}
	n := min(p.MBlack, r.clean.Len())
	var opts conferrable.Options
	if err := os.MkdirAll(r.path(Conferrable), 0o755); err != nil {
		return err
	}
	file := r.path(Conferrable, "fingerprint.json")
	conf := map[string]any{"victim": r.stageHash("train-victim"), "benign": benignHashes, "owner": hashes, "n": n, "opts": opts, "seed": r.cfg.Seed}
	var fit conferrableFit
	err = r.stage("conferrable-fit", conf, []string{file}, &fit, func() error {
		idx := rand.New(rand.NewPCG(r.cfg.Seed, 0x636f6e66)).Perm(r.clean.Len())[:n]
		imgs, labels := make([][]uint8, n), make([]int, n)
		for i, k := range idx {
			imgs[i], labels[i] = r.clean.Image(k), r.clean.Labels[k]
		}
		r.log.Printf("conferrable: %d examples from the owner's clean images, the victim, %d students of it and %d reference models", n, len(pos), len(refs))
		fp, err := conferrable.Generate(r.ctx, victim, pos, refs, imgs, labels, r.clean.H, r.clean.W, opts)
		if err != nil {
			return err
		}
		mean := func(ms ...classifier.Model) (float64, error) {
			var s float64
			for _, m := range ms {
				sc, err := fp.Scores(m)
				if err != nil {
					return 0, err
				}
				for _, v := range sc {
					s += v / float64(len(sc)*len(ms))
				}
			}
			return s, nil
		}
		fit.Examples = n
		for _, x := range []struct {
			to *float64
			ms []classifier.Model
		}{{&fit.Victim, []classifier.Model{victim}}, {&fit.Surrogates, pos}, {&fit.References, refs}, {&fit.Reference, []classifier.Model{ref}}} {
			if *x.to, err = mean(x.ms...); err != nil {
				return err
			}
		}
		b, err := json.Marshal(fp)
		if err != nil {
			return err
		}
		return atomicfile.WriteBytes(file, true, b)
	})
	if err != nil {
		return err
	}
	r.log.Printf("conferrable: the targets' mean probability on the examples: victim %.3f, the owner's students of it %.3f, the reference models %.3f, the test's reference %.3f",
		fit.Victim, fit.Surrogates, fit.References, fit.Reference)
	b, err := os.ReadFile(file)
	if err != nil {
		return err
	}
	var fp conferrable.Fingerprint
	if err := json.Unmarshal(b, &fp); err != nil {
		return fmt.Errorf("%s: %w", file, err)
	}
	res := &DefenceResult{Name: Conferrable, Setup: map[string]any{"fit": fit, "options": fp.Options}}
	for _, f := range r.res.Models {
		if f.Name == "victim" {
			res.Victim = f
		}
	}
	for _, mr := range r.res.Rows {
		if err := r.ctx.Err(); err != nil {
			return err
		}
		s, stop, err := r.suspectModel(mr)
		if err != nil {
			return err
		}
		t, err := fp.Verify(s, ref, p.MinDelta)
		stop()
		if err != nil {
			return fmt.Errorf("conferrable on %s: %w", mr.Attack, err)
		}
		row := DefenceRow{Attack: mr.Attack, Label: mr.Label, Stolen: mr.Stolen, Accuracy: mr.Accuracy, Agreement: mr.Agreement, P: t.P, DeltaMu: t.DeltaMu}
		row.Verdict, row.Outcome = r.defenceVerdict(mr.Accuracy, t.P)
		res.Rows = append(res.Rows, row)
	}
	r.addDefence(res)
	return nil
}
