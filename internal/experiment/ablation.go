package experiment

import (
	"fmt"
	"io"
	"text/tabwriter"

	"move/internal/classifier"
	"move/internal/features"
	"move/internal/meta"
	"move/internal/stats"
	"move/internal/watermark"
)

// Ablations of MOVE (Config.Ablations), each a verdict per suspect beside the table's.
const (
	// AblationRaw: the white-box meta-classifier on the gradients themselves, not their signs.
	AblationRaw = "white-raw"
	// AblationDirect: no meta-classifier; the suspect's probability of the true class on the
	// owner-styled held-out key images, paired against the reference's.
	AblationDirect = "black-direct"
)

// ablations trains the raw-gradient meta-classifier (a stage) and verifies every suspect with
// it and with the direct test.
func (r *runner) ablations() error {
	if !r.cfg.Ablations {
		return nil
	}
	p := r.cfg.Profile
	victim, benign, ref, pairs, err := r.references()
	if err != nil {
		return err
	}
	raw, err := r.whiteMeta("weights-raw", features.Raw, victim, benign, pairs)
	if err != nil {
		return err
	}
	black, err := meta.Load(r.path("meta-black.safetensors"))
	if err != nil {
		return err
	}
	held := black.Info.HeldOutIdx
	if len(held) > p.MBlack {
		held = held[:p.MBlack]
	}
	for i := range r.res.Rows {
		if err := r.ctx.Err(); err != nil {
			return err
		}
		row := &r.res.Rows[i]
		s, stop, err := r.suspectModel(*row)
		if err != nil {
			return err
		}
		row.Ablations = map[string]*Verdict{}
		v, err := r.verifyWhite(raw, *row, s, ref, pairs, false)
		if err != nil {
			stop()
			return err
		}
		if v != nil {
			row.Ablations[AblationRaw] = v
		}
		d, err := directTest(s, ref, pairs, held, p.Alpha, p.MinDelta)
		stop()
		if err != nil {
			return fmt.Errorf("the direct test of %s: %w", row.Attack, err)
		}
		row.Ablations[AblationDirect] = d
	}
	return nil
}

// directTest compares, on the owner-styled images of the key pairs at idx, the suspect's
// probability of the true class with the reference's (one-tailed paired t-test, H1: the
// suspect's exceeds the reference's by more than margin): verification with no
// meta-classifier and no control styles.
func directTest(s, ref classifier.Model, pairs []watermark.Pair, idx []int, alpha, margin float64) (*Verdict, error) {
	if len(idx) < 2 {
		return nil, fmt.Errorf("%d held-out key images: need 2", len(idx))
	}
	imgs := make([][]uint8, len(idx))
	for k, i := range idx {
		imgs[k] = pairs[i].Styled
	}
	h, w := pairs[idx[0]].H, pairs[idx[0]].W
	ps, err := s.Probs(imgs, h, w)
	if err != nil {
		return nil, err
	}
	pb, err := ref.Probs(imgs, h, w)
	if err != nil {
		return nil, err
	}
	v := &Verdict{M: len(idx), UnspecificP: -1, MetaP: -1}
	sv, bv := make([]float64, len(idx)), make([]float64, len(idx))
	for k, i := range idx {
		l := pairs[i].Label
		if l >= len(ps[k]) || l >= len(pb[k]) {
			return nil, fmt.Errorf("an answer has %d classes, the key's label is %d", len(ps[k]), l)
		}
		sv[k], bv[k] = float64(ps[k][l])-margin, float64(pb[k][l])
		v.ProbSuspect, v.ProbBenign = append(v.ProbSuspect, float64(ps[k][l])), append(v.ProbBenign, bv[k])
	}
	t, err := stats.PairedT(sv, bv, stats.Greater)
	if err != nil {
		return nil, err
	}
	v.P, v.DeltaMu = t.P, t.DeltaMu+margin
	v.Stolen = v.P < alpha
	v.Verdict = "not stolen"
	if v.Stolen {
		v.Verdict = "stolen"
	}
	return v, nil
}

// writeAblations prints each suspect's verdicts under MOVE and its ablations.
func writeAblations(w io.Writer, res *Results) {
	has := false
	for _, r := range res.Rows {
		has = has || r.Ablations != nil
	}
	if !has {
		return
	}
	fmt.Fprintln(w, "\nablations (p-values; * a verdict of stolen): white = the paper's sign features, white raw = the")
	fmt.Fprintln(w, "gradients themselves; black = the style-gain test, black direct = no meta-classifier and no control")
	fmt.Fprintln(w, "styles (the suspect's true-class probability on owner-styled images against the reference's):")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "suspect\tstolen\twhite p\twhite raw p\tblack p\tblack direct p\tdirect dmu\t")
	cell := func(v *Verdict) string {
		switch {
		case v == nil:
			return "-"
		case v.Stolen:
			return fmt.Sprintf("%.3g*", v.P)
		}
		return fmt.Sprintf("%.3g", v.P)
	}
	for _, r := range res.Rows {
		d := r.Ablations[AblationDirect]
		dmu := "-"
		if d != nil {
			dmu = fmt.Sprintf("%+.3f", d.DeltaMu)
		}
		fmt.Fprintf(tw, "%s\t%v\t%s\t%s\t%s\t%s\t%s\t\n", r.Label, r.Stolen, cell(r.White), cell(r.Ablations[AblationRaw]), cell(r.Black), cell(d), dmu)
	}
	tw.Flush()
}
