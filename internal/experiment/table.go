package experiment

import (
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"move/internal/features"
	"move/internal/stats"
	"move/internal/verify"
)

// WriteTable prints the paper's table: one row per suspect, delta-mu and p-value white-box
// and black-box, the suspect's accuracy and agreement with the victim, and whether the
// verdict was right.
func WriteTable(w io.Writer, res *Results) {
	for _, m := range res.Models {
		fmt.Fprintf(w, "%-8s test accuracy %6.2f%%  (%s)\n", m.Name, 100*m.Accuracy, m.Role)
	}
	if v, b, n, ok := Harmlessness(res); ok {
		fmt.Fprintf(w, "harmlessness: the victim's accuracy is %+.2f points from the mean of the %d benign models (%.2f%%)\n", 100*(v-b), n, 100*b)
	}
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "suspect\tacc %\tagree %\twhite dmu\twhite p\tblack gain\tblack p\tblack p meta\tblack p paper\tverdict\t")
	for _, r := range res.Rows {
		fmt.Fprintf(tw, "%s\t%.2f\t%.2f\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t\n", r.Label, 100*r.Accuracy, 100*r.Agreement,
			dmu(r.White), pval(r.White), dmu(r.Black), pval(r.Black), metaP(r.Black), unspecific(r.Black), verdict(r))
	}
	tw.Flush()
	alpha := res.Config.Profile.Alpha
	fmt.Fprintf(w, "\nalpha = %g; p-values below it are verdicts of \"stolen\". m = %d white-box, %d black-box.\n",
		alpha, res.Config.Profile.MWhite, res.Config.Profile.MBlack)
	switch res.Config.WhiteFamily {
	case features.GainTop:
		fmt.Fprintln(w, "white dmu / p: style-gain-top, the style-gain test on the m key images where the victim's gain is most")
		fmt.Fprintln(w, "its own (ranked by the owner's models, at most a third of one class; each gain the mean over the five augmentations), suspect against")
		fmt.Fprintln(w, "reference, with the margin (only suspects whose weights are at hand: a served one reads -).")
	default:
		fmt.Fprintf(w, "white p: the %s meta-classifier's score, owner's style minus control styles, against the reference\n", whiteName(res.Config.WhiteFamily))
		fmt.Fprintln(w, "and the margin.")
	}
	fmt.Fprintln(w, "black gain / p: the style-gain test (true-class probability on the owner's style minus on the")
	fmt.Fprintln(w, "control styles, suspect against reference), the verdict; black p meta: the black-box meta-classifier's")
	fmt.Fprintln(w, "contrast test; black p paper: the paper's test on the owner's style alone (small for any model that")
	fmt.Fprintln(w, "shares the victim's robustness to restyling in general, and for a constant answer), for comparison")
	writeInnocents(w, res)
	writeDraws(w, res)
	writeFamilies(w, res)
	writePower(w, res)
	writeAblations(w, res)
	writeDefences(w, res)
	writeDetections(w, res)
	writeClaims(w, res)
	for _, warn := range res.Warnings {
		fmt.Fprintf(w, "warning: %s\n", warn)
	}
	fmt.Fprintf(w, "the stages took %s when they ran\n", time.Duration(res.StageSeconds*float64(time.Second)).Round(time.Second))
	writeSweeps(w, res)
}

// writeInnocents prints how the test treated the innocent suspects in each mode.
func writeInnocents(w io.Writer, res *Results) {
	if len(res.Innocents) == 0 {
		return
	}
	fmt.Fprintln(w, "\ninnocent suspects (the independent control and the innocent suite):")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "mode\ttested\tp<0.01\tp<0.05\taccused\trate <= (95% CP)\tKS D+\tKS p (excess of small p)\t")
	for _, mode := range features.Modes {
		s, ok := res.Innocents[mode]
		if !ok {
			continue
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%.3f\t%.3f\t%.3g\t\n", mode, s.Tested, s.Accused01, s.Accused05, s.Accused,
			s.Upper95, s.Uniform.DPlus, s.Uniform.PPlus)
	}
	tw.Flush()
	fmt.Fprintln(w, "accused: verdicts of \"stolen\" (p < alpha, delta-mu above the margin, a working classifier);")
	fmt.Fprintln(w, "rate <=: the exact Clopper-Pearson 95% upper bound on the false-accusation rate")
	for _, row := range res.Rows {
		if v := row.Black; v != nil && len(v.Rebuttals) > 0 {
			verdict := "cleared"
			if v.UnrebuttedP < res.Config.Profile.Alpha {
				verdict = "ACCUSED"
			}
			fmt.Fprintf(w, "%s: black p %.3g with %s as a control (a rebuttal with its earlier record); %.3g without: %s on the statistics alone\n",
				row.Label, v.P, strings.Join(v.Rebuttals, ", "), v.UnrebuttedP, verdict)
		}
	}
}

// writeDraws prints, with Config.Draws, the table's white-box test over draws of the key
// images: per suspect the share of draws that flag it, and the innocents' accusation rate.
func writeDraws(w io.Writer, res *Results) {
	if res.Config.Draws < 2 {
		return
	}
	p := res.Config.Profile
	fmt.Fprintf(w, "\nthe white-box verdict's test (%s) on %d draws of m = %d key images (the verdict is the first):\n", res.Config.WhiteFamily, res.Config.Draws, p.MWhite)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "suspect\tstolen\tverdict p\tflagged (p < %g)\tmedian p\t\n", p.Alpha)
	for _, r := range res.Rows {
		v := r.White
		if v == nil || v.Draws == 0 {
			continue
		}
		share := fmt.Sprintf("%.1f%%", 100*float64(v.DrawsFlagged)/float64(v.Draws))
		if v.Verdict == verify.Inconclusive {
			share += " i"
		}
		fmt.Fprintf(tw, "%s\t%v\t%s\t%s\t%.3g\t\n", r.Label, r.Stolen, pval(v), share, v.DrawsMedianP)
	}
	tw.Flush()
	if s, ok := res.Innocents[features.White]; ok && s.DrawInnocents > 0 {
		fmt.Fprintf(w, "innocents (working classifiers): %d, %d draws each; accused in at least one draw: %d; share of draws\n", s.DrawInnocents, res.Config.Draws, s.DrawAccusedAny)
		fmt.Fprintf(w, "that accuse an innocent: %.2f%% on average (95%% upper bound %.2f%%, Student's t over the innocents), %.1f%% at worst\n",
			100*s.DrawRate, 100*s.DrawRateUpper95, 100*s.DrawWorst)
	}
	fmt.Fprintln(w, "i: no working classifier on the owner's images (inconclusive whatever p says)")
}

// writeClaims prints the simulated false claims.
func writeClaims(w io.Writer, res *Results) {
	if len(res.Claims) == 0 {
		return
	}
	fmt.Fprintln(w, "\nfalse claims (a dishonest claimant accuses an innocent model):")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "scenario\ttarget\twhite p\tblack p\tblack p unspecific\tbonferroni (white/black)\tconvicted\t")
	for _, c := range res.Claims {
		bonf := "-"
		if len(c.Bonf) > 0 {
			bonf = fmt.Sprintf("%s/%s", fmtP(c.Bonf[features.White], c.Bonf != nil), fmtP(c.Bonf[features.Black], c.Bonf != nil))
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%v\t\n", c.Scenario, c.Target, claimCell(c.Verdicts[features.White]), claimCell(c.Verdicts[features.Black]),
			unspecific(c.Verdicts[features.Black]), bonf, c.Convicted)
	}
	tw.Flush()
	fmt.Fprintln(w, "i: inconclusive (the reference falls too far short of the target, or the target is no working classifier); refused: move would not rank the claimant's key")
	for _, c := range res.Claims {
		fmt.Fprintf(w, "  %s: %s", c.Scenario, c.Description)
		if c.Tries > 0 {
			fmt.Fprintf(w, " (smallest p over %d styles shown)", c.Tries)
		}
		fmt.Fprintln(w)
		for _, mode := range features.Modes {
			if v := c.Verdicts[mode]; v != nil && v.Why != "" {
				fmt.Fprintf(w, "    %s-box %s: %s\n", mode, v.Verdict, v.Why)
			}
		}
	}
}

// claimCell is a claim's p-value in one mode, marked when inconclusive, or "refused".
func claimCell(v *Verdict) string {
	switch {
	case v != nil && v.Verdict == Refused:
		return Refused
	case v != nil && v.Verdict == verify.Inconclusive:
		return pval(v) + " i"
	}
	return pval(v)
}

func fmtP(p float64, ok bool) string {
	if !ok {
		return "-"
	}
	return fmt.Sprintf("%.3g", p)
}

// writeSweeps prints each sweep as a table: one row per value, one column per p-value it
// followed ("white/Direct-copy", ...).
func writeSweeps(w io.Writer, res *Results) {
	for _, n := range slices.Sorted(maps.Keys(res.Sweeps)) {
		items := res.Sweeps[n]
		cols := sweepSeries(items)
		sweepTable(w, fmt.Sprintf("\nsweep of %s: p-values", n), n, items, cols, func(it SweepItem, c string) string {
			if p, ok := it.P[c]; ok {
				return fmt.Sprintf("%.3g", p)
			}
			return "-"
		})
		if items[0].DeltaMu != nil {
			sweepTable(w, fmt.Sprintf("sweep of %s: delta-mu", n), n, items, cols, func(it SweepItem, c string) string {
				if d, ok := it.DeltaMu[c]; ok {
					return fmt.Sprintf("%+.4f", d)
				}
				return "-"
			})
		}
		if items[0].Accuracy != nil {
			sweepTable(w, fmt.Sprintf("sweep of %s: test accuracy %%", n), n, items, slices.Sorted(maps.Keys(items[0].Accuracy)),
				func(it SweepItem, c string) string { return fmt.Sprintf("%.2f", 100*it.Accuracy[c]) })
		}
		if items[0].Points != nil {
			writePoints(w, n, items, res)
		}
	}
}

// writePoints prints a sweep that re-verified every suspect white-box: each suspect's p-value
// per value, and per value the thefts flagged and the innocents accused.
func writePoints(w io.Writer, name string, items []SweepItem, res *Results) {
	fmt.Fprintf(w, "sweep of %s: every suspect's white-box p-value (* a verdict of stolen; served suspects have no weights to read)\n", name)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprint(tw, "suspect\ttruth\t")
	for _, it := range items {
		fmt.Fprintf(tw, "%s=%s\t", name, it.name())
	}
	fmt.Fprintln(tw)
	for _, row := range res.Rows {
		if _, ok := items[0].Points[features.White+"/"+row.Label]; !ok {
			continue
		}
		truth := "innocent"
		if row.Stolen {
			truth = "theft"
		}
		fmt.Fprintf(tw, "%s\t%s\t", row.Label, truth)
		for _, it := range items {
			pt, ok := it.Points[features.White+"/"+row.Label]
			switch {
			case !ok:
				fmt.Fprint(tw, "-\t")
			case pt.Verdict == verify.Stolen:
				fmt.Fprintf(tw, "%.3g*\t", pt.P)
			default:
				fmt.Fprintf(tw, "%.3g\t", pt.P)
			}
		}
		fmt.Fprintln(tw)
	}
	tw.Flush()
	fmt.Fprintf(w, "sweep of %s: white-box verdicts (rate <=: the Clopper-Pearson 95%% upper bound on the false-accusation rate)\n", name)
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "%s\tthefts flagged\tinnocents accused\trate <=\t\n", name)
	for _, it := range items {
		t := tallyPoints(it.Points)
		fmt.Fprintf(tw, "%s\t%d of %d\t%d of %d\t%.3f\t\n", it.name(), t.Flagged, t.Thefts, t.Accused, t.Innocents, t.RateUpper)
	}
	tw.Flush()
}

// pointTally counts the white-box verdicts at one value of a sweep: a verdict of stolen on a
// theft is a theft flagged, on an innocent an innocent accused.
type pointTally struct {
	Thefts, Flagged, Innocents, Accused int
	RateUpper                           float64 // Clopper-Pearson 95% upper bound on Accused / Innocents
}

func tallyPoints(points map[string]SweepPoint) pointTally {
	var t pointTally
	for _, pt := range points {
		stolen := pt.Verdict == verify.Stolen
		if pt.Stolen {
			t.Thefts++
			if stolen {
				t.Flagged++
			}
		} else {
			t.Innocents++
			if stolen {
				t.Accused++
			}
		}
	}
	_, t.RateUpper = stats.ClopperPearson(t.Accused, t.Innocents, 0.05)
	return t
}

// sweepTable prints one figure of a sweep: a row per value, a column per series.
func sweepTable(w io.Writer, title, name string, items []SweepItem, cols []string, cell func(SweepItem, string) string) {
	fmt.Fprintln(w, title)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "%s\t%s\t\n", name, strings.Join(cols, "\t"))
	for _, it := range items {
		fmt.Fprint(tw, it.name())
		for _, c := range cols {
			fmt.Fprint(tw, "\t"+cell(it, c))
		}
		fmt.Fprint(tw, "\t\n")
	}
	tw.Flush()
}

// metaP is the meta-classifier's contrast test when the style-gain test decided.
func metaP(v *Verdict) string {
	if v == nil || v.MetaP < 0 {
		return "-"
	}
	return fmt.Sprintf("%.3g", v.MetaP)
}

// unspecific is the paper's test without the control contrast, for comparison.
func unspecific(v *Verdict) string {
	if v == nil || v.UnspecificP < 0 {
		return "-"
	}
	if v.UnspecificP < 1e-300 {
		return "<1e-300"
	}
	return fmt.Sprintf("%.3g", v.UnspecificP)
}

func dmu(v *Verdict) string {
	if v == nil {
		return "-"
	}
	return fmt.Sprintf("%.3f", v.DeltaMu)
}

func pval(v *Verdict) string {
	if v == nil {
		return "-"
	}
	if v.P < 1e-300 {
		return "<1e-300"
	}
	return fmt.Sprintf("%.3g", v.P)
}

// verdict says, per mode, whether the verdict was right (ok) or wrong (MISSED / FALSE
// ACCUSATION).
func verdict(r Row) string {
	var parts []string
	for _, v := range []*Verdict{r.White, r.Black} {
		switch {
		case v == nil:
			parts = append(parts, "-")
		case v.Verdict == "inconclusive" && !r.Stolen:
			parts = append(parts, "ok:inconclusive")
		case v.Verdict == "inconclusive":
			parts = append(parts, "MISSED:inconclusive")
		case v.Stolen == r.Stolen:
			parts = append(parts, "ok")
		case v.Stolen:
			parts = append(parts, "FALSE-ACCUSATION")
		default:
			parts = append(parts, "MISSED")
		}
	}
	return strings.Join(parts, "/")
}

// Harmlessness returns the victim's test accuracy, the mean of the benign models' and how
// many benign models there are; ok is false when either is missing.
func Harmlessness(res *Results) (victim, benign float64, n int, ok bool) {
	found := false
	for _, m := range res.Models {
		switch {
		case m.Name == "victim":
			victim, found = m.Accuracy, true
		case strings.HasPrefix(m.Name, "benign"):
			benign += m.Accuracy
			n++
		}
	}
	if !found || n == 0 {
		return 0, 0, 0, false
	}
	return victim, benign / float64(n), n, true
}

// Correct reports whether every verdict of the table was right.
func Correct(res *Results) bool { return len(Wrong(res)) == 0 }

// Wrong says which verdicts of res are wrong, a phrase per mode and kind of error ("white-box
// missed Distillation, Label-query"): thefts not flagged, then innocents accused.
func Wrong(res *Results) []string {
	var out []string
	for _, kind := range []struct {
		stolen bool
		what   string
	}{{true, "missed"}, {false, "accused"}} {
		for _, mode := range features.Modes {
			var labels []string
			for _, r := range res.Rows {
				if v := r.verdict(mode); v != nil && r.Stolen == kind.stolen && v.Stolen != r.Stolen {
					labels = append(labels, r.Label)
				}
			}
			if len(labels) > 0 {
				out = append(out, fmt.Sprintf("%s-box %s %s", mode, kind.what, strings.Join(labels, ", ")))
			}
		}
	}
	return out
}

// sweepSeries is the sorted set of p-values ("white/Direct-copy", ...) a sweep followed.
// name is how tables and plots show the item's value.
func (it SweepItem) name() string {
	if it.Label != "" {
		return it.Label
	}
	return fmt.Sprintf("%g", it.Value)
}

func sweepSeries(items []SweepItem) []string {
	set := map[string]bool{}
	for _, it := range items {
		for k := range it.P {
			set[k] = true
		}
	}
	return slices.Sorted(maps.Keys(set))
}

// whiteName is the family of a run's white-box column; runs recorded before the choice was
// recorded used the paper's classifier.
func whiteName(f string) string {
	if f == "" {
		return "weights"
	}
	return f
}
