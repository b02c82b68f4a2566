package experiment

import (
	"fmt"
	"path/filepath"

	"move/internal/classifier"
	"move/internal/data"
	"move/internal/features"
	"move/internal/meta"
	"move/internal/verify"
	"move/internal/watermark"
)

// MovePatch is MOVE's patch-based variant (the paper's Table 9 ablation of its first part):
// the external feature is BadNets' white square stamped on the images MOVE styles, labels
// unchanged, instead of the style. Everything else is MOVE's: the victim's recipe and seed,
// the benign models (the very files: they never see the feature), the meta-classifiers'
// recipe, the attacks and the test; the contrast's controls are the same square in black and
// in grey on the same images (control styles against a square would favour any better
// classifier: measured, it accused the independent model on the demo). Its table holds one
// defence per mode, MovePatch+"-white" and MovePatch+"-black".
const MovePatch = "move-patch"

// movePatch runs the patch variant in OUT/move-patch.
func (r *runner) movePatch() error {
	p := r.cfg.Profile
	patch := watermark.WhitePatch(r.size)
	// The contrast of the patch variant: the same square in black and in mid-grey.
	controls := []watermark.Patch{watermark.SolidPatch(r.size, 0), watermark.SolidPatch(r.size, 128)}
	benign, ref, err := r.benignModels()
	if err != nil {
		return err
	}
	stylePairs, err := r.keyPairs()
	if err != nil {
		return err
	}
	pairs, err := watermark.PatchPairs(stylePairs, patch, controls...)
	if err != nil {
		return err
	}
	mark := func() (*data.Set, error) { return r.patchedTrainingSet(patch, stylePairs) }
	conf := map[string]any{"arch": p.Arch, "epochs": p.Epochs, "seed": r.victimSeed(), "patch": patch, "upstream": r.base}
	desc := fmt.Sprintf("the owner's training set with a white %dx%d patch, not the style, on the images MOVE styles (labels unchanged)", patch.Size, patch.Size)
	setup := map[string]any{"patch": patch, "transformed": len(pairs)}
	white := &DefenceResult{Name: MovePatch + "-white", Setup: setup}
	black := &DefenceResult{Name: MovePatch + "-black", Setup: setup}
	victim, err := r.defenceVictim(MovePatch, conf, mark, nil, desc, "victim watermarked with MOVE's patch variant (a white square, labels unchanged)", &white.Victim)
	if err != nil {
		return err
	}
	black.Victim = white.Victim
	metas := map[string]*meta.Classifier{}
	for _, mode := range features.Modes {
		file := r.path(MovePatch, "meta-"+mode+".safetensors")
		mo, mconf := r.metaOptions(mode, len(pairs), r.stageHash(MovePatch+"-victim"))
		mconf["patch"], mconf["control_patches"] = patch, []uint8{0, 128}
		info, err := r.metaStage(MovePatch+"-meta-"+mode, file, mconf, victim, benign, pairs, mo)
		if err != nil {
			return err
		}
		r.log.Printf("%s %s-box meta-classifier: held-out accuracy %.3f", MovePatch, mode, info.HeldOutAcc)
		if metas[mode], err = meta.Load(file); err != nil {
			return err
		}
	}
	fill := func(row DefenceRow, v *Verdict) DefenceRow {
		row.P, row.DeltaMu, row.Verdict, row.Outcome = v.P, v.DeltaMu, v.Stolen, v.Verdict
		return row
	}
	err = r.defenceSuspects(MovePatch, victim, func(row DefenceRow, mr Row, s classifier.Model) error {
		wv, err := r.verifyWhite(metas[features.White], mr, s, ref, pairs, false)
		if err != nil {
			return err
		}
		if wv != nil {
			white.Rows = append(white.Rows, fill(row, wv))
		}
		res, err := verify.Run(metas[features.Black], s, ref, pairs, r.cfg.testOptions(p.MBlack))
		if err != nil {
			return fmt.Errorf("verifying %s (%s, black-box): %w", row.Attack, MovePatch, err)
		}
		black.Rows = append(black.Rows, fill(row, verdictOf(res)))
		if row.Stolen {
			wp := -1.0
			if wv != nil {
				wp = wv.P
			}
			r.log.Printf("%s %s: accuracy %.2f%%, white p %.3g, black p %.3g", MovePatch, row.Attack, 100*row.Accuracy, wp, res.P)
		}
		return nil
	})
	if err != nil {
		return err
	}
	r.addDefence(white)
	r.addDefence(black)
	return nil
}

// patchedTrainingSet is the training set of MOVE's victim with, on each image the key styled,
// the patch on its original instead of the style; pairs are the key's (already read), in the
// order of its samples.
func (r *runner) patchedTrainingSet(patch watermark.Patch, pairs []watermark.Pair) (*data.Set, error) {
	keyPath := r.path("marked", "key.json")
	k, err := watermark.LoadKey(keyPath)
	if err != nil {
		return nil, err
	}
	if len(pairs) != len(k.Samples) {
		return nil, fmt.Errorf("%s: %d samples, %d pairs read", keyPath, len(k.Samples), len(pairs))
	}
	styled := map[string]int{}
	for i, s := range k.Samples {
		f, err := k.Path(s.Styled)
		if err != nil {
			return nil, err
		}
		styled[f] = i
	}
	set, err := data.LoadFolder(r.path("marked", "train"), data.FolderOptions{})
	if err != nil {
		return nil, err
	}
	replaced := 0
	for j, f := range set.Paths {
		real, err := filepath.EvalSymlinks(f)
		if err != nil {
			return nil, err
		}
		i, ok := styled[real]
		if !ok {
			continue
		}
		q := pairs[i]
		if q.H != set.H || q.W != set.W {
			return nil, fmt.Errorf("%s: the key's original is %dx%d, the training set's images %dx%d", f, q.W, q.H, set.W, set.H)
		}
		stamped, err := patch.Stamp(q.Orig, q.H, q.W)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", f, err)
		}
		copy(set.Image(j), stamped)
		replaced++
	}
	if replaced != len(k.Samples) {
		return nil, fmt.Errorf("%s: %d of the key's %d styled images are in the training set %s", keyPath, replaced, len(k.Samples), r.path("marked", "train"))
	}
	return set, nil
}
