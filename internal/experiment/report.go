package experiment

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"html/template"
	"maps"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"move/internal/atomicfile"
	"move/internal/features"
)

// WriteReport writes OUT/report.html: one self-contained page (images inlined, plots as SVG,
// no scripts, nothing fetched) with the table, the style and sample images and the plots.
func WriteReport(res *Results) error {
	out := res.Config.Out
	styleMime := "image/jpeg"
	if strings.HasSuffix(strings.ToLower(res.Config.Style), ".png") {
		styleMime = "image/png"
	}
	var table, defences bytes.Buffer
	WriteTable(&table, res)
	writeFamilies(&defences, res)
	writePower(&defences, res)
	writeDraws(&defences, res)
	writeAblations(&defences, res)
	writeDefences(&defences, res)
	writeDetections(&defences, res)
	page := map[string]any{
		"Defences": defences.String(),
		"Saliency": saliencyPictures(res),
		"R":        res,
		"Table":    table.String(),
		"Style":    img(res.Config.Style, styleMime),
		"Samples":  img(filepath.Join(out, "samples.png"), "image/png"),
		"PPlot":    template.HTML(pPlot(res)),
		"ProbPlot": template.HTML(probPlot(res)),
		"AccPlot":  template.HTML(accPlot(res)),
		"QQPlot":   template.HTML(qqPlot(res)),
		"Sweeps":   sweepPlots(res),
		"Correct":  Correct(res),
		"Wrong":    strings.Join(Wrong(res), "; "),
		"Harmless": "",
	}
	if v, b, n, ok := Harmlessness(res); ok {
		page["Harmless"] = fmt.Sprintf("The victim's test accuracy (%.2f%%) is %+.2f points from the mean of the %d benign models (%.2f%%).", 100*v, 100*(v-b), n, 100*b)
	}
	var buf bytes.Buffer
	if err := reportTmpl.Execute(&buf, page); err != nil {
		return err
	}
	return atomicfile.WriteBytes(filepath.Join(out, "report.html"), true, buf.Bytes())
}

var reportTmpl = template.Must(template.New("report").Funcs(template.FuncMap{
	"pct": func(v float64) string { return fmt.Sprintf("%.2f", 100*v) },
	"p": func(v *Verdict) string {
		if v == nil {
			return "–"
		}
		return pval(v)
	},
	"d": func(v *Verdict) string {
		if v == nil {
			return "–"
		}
		return fmt.Sprintf("%.3f", v.DeltaMu)
	},
	"cls": func(v *Verdict, truth bool) string {
		switch {
		case v == nil:
			return ""
		case v.Stolen == truth:
			return "ok"
		}
		return "bad"
	},
	"secs": func(s float64) string { return fmt.Sprintf("%.0f s", s) },
	"up": func(v *Verdict) string {
		if v == nil {
			return "–"
		}
		return unspecific(v)
	},
}).Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>move experiment: {{.R.Config.Profile.Name}}</title>
<style>
body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:.3em .6em;text-align:right}
th{background:#f3f3f3}td:first-child{text-align:left}.ok{background:#e6f4e6}.bad{background:#f9d6d6;font-weight:bold}
pre{background:#f6f6f6;padding:1em;overflow:auto}figure{margin:1em 0}img{image-rendering:pixelated;max-width:100%}
.imgs{display:flex;gap:2em;align-items:flex-start}
</style></head><body>
<h1>MOVE ownership verification: {{.R.Config.Profile.Name}} experiment</h1>
<p>Data <code>{{.R.Config.Data}}</code>, style <code>{{.R.Config.Style}}</code>, seed {{.R.Config.Seed}},
move {{.R.Version}}; the stages took {{secs .R.StageSeconds}} when they ran (this invocation: {{secs .R.WallSeconds}}). Command: <code>{{.R.Config.Command}}</code></p>
<p>{{if .Correct}}Every verdict is right: each stolen model is flagged and the independent model is not.{{else}}<b>Some verdicts are wrong</b>: {{.Wrong}} (marked red below).{{end}}</p>
{{range .R.Warnings}}<p><b>Warning:</b> {{.}}</p>{{end}}
<h2>Verification</h2>
<table><tr><th>suspect</th><th>arch</th><th>accuracy %</th><th>agreement %</th><th>white-box Δμ</th><th>white-box p</th><th>black-box Δμ</th><th>black-box p</th></tr>
{{range .R.Rows}}<tr><td>{{.Label}}{{if not .Stolen}} (not stolen){{end}}</td><td>{{.Arch}}</td><td>{{pct .Accuracy}}</td><td>{{pct .Agreement}}</td>
<td class="{{cls .White .Stolen}}">{{d .White}}</td><td class="{{cls .White .Stolen}}">{{p .White}}</td>
<td class="{{cls .Black .Stolen}}">{{d .Black}}</td><td class="{{cls .Black .Stolen}}">{{p .Black}}</td></tr>
{{end}}</table>
<p>One-tailed paired t-test (H1: the meta-classifier's victim probability is higher for the suspect than for the benign reference), α = {{.R.Config.Profile.Alpha}}, m = {{.R.Config.Profile.MWhite}} (white-box) and {{.R.Config.Profile.MBlack}} (black-box) transformed images the meta-classifiers never trained on. The benign reference is a model trained on the clean data that the meta-classifiers never saw.</p>
<figure>{{.PPlot}}<figcaption>p-value per suspect (log scale); the dashed line is α.</figcaption></figure>
<figure>{{.ProbPlot}}<figcaption>The meta-classifier's victim probability on each verification image: suspect (filled) against the benign reference (open).</figcaption></figure>
{{if .R.Innocents}}<h2>Innocent suspects</h2>
<p>Every suspect that was not stolen — the independent control and the innocent suite — tested like the thefts. A false accusation is a verdict of "stolen" for one of them.</p>
<table><tr><th>mode</th><th>innocents tested</th><th>p &lt; 0.01</th><th>p &lt; 0.05</th><th>accused</th><th>false-accusation rate ≤ (95% Clopper-Pearson)</th><th>KS D⁺</th><th>KS p (excess of small p-values)</th></tr>
{{range $m, $s := .R.Innocents}}<tr><td>{{$m}}</td><td>{{$s.Tested}}</td><td>{{$s.Accused01}}</td><td>{{$s.Accused05}}</td><td>{{$s.Accused}}</td><td>{{printf "%.3f" $s.Upper95}}</td><td>{{printf "%.3f" $s.Uniform.DPlus}}</td><td>{{printf "%.3g" $s.Uniform.PPlus}}</td></tr>{{end}}</table>
<figure>{{.QQPlot}}<figcaption>QQ plot: each innocent's p-value against the uniform quantile it would have under a valid test (log axes). Points below the diagonal are p-values smaller than chance gives; below the dashed line (α) they are accusations.</figcaption></figure>
<table><tr><th>innocent</th><th>kind</th><th>arch</th><th>accuracy %</th><th>agreement %</th><th>white-box p</th><th>black-box p</th><th>black-box verdict</th></tr>
{{range .R.Rows}}{{if not .Stolen}}<tr><td>{{.Label}}</td><td>{{.Kind}}</td><td>{{.Arch}}</td><td>{{pct .Accuracy}}</td><td>{{pct .Agreement}}</td><td class="{{cls .White .Stolen}}">{{p .White}}</td><td class="{{cls .Black .Stolen}}">{{p .Black}}</td><td>{{if .Black}}{{.Black.Verdict}}{{if .Black.Rebuttals}} (with its own earlier watermark as a rebuttal; {{printf "%.3g" .Black.UnrebuttedP}} on the statistics alone){{end}}{{end}}</td></tr>{{end}}{{end}}</table>
<p>A rebuttal: an innocent carrying its own MOVE watermark shows its registration record, signed before the owner's, and its style counts as one more control of the style-gain test (<code>move verify --rebuttal</code>). A style near the owner's gives the same response, and no statistic on the suspect tells the two apart; only the order of the records does.</p>
{{end}}
{{if .Defences}}<h2>Ablations, defences compared, and the thief's search for the mark</h2>
<p>Each baseline watermarks its own victim (same architecture, recipe and seed as MOVE's), is stolen by the same attacks with the same recipes, and verifies every suspect against the same reference; the models that never saw a victim are the same files. BadNets: a patch trigger stamped on the same share of training images, relabelled to class 0; its test compares the suspect's class-0 probability on triggered test images with the reference's. Dataset inference (Maini et al.) embeds nothing: a regressor learnt on the victim tells the owner's training images from public ones by their distances to the decision boundary (black-box: blind walks; white-box: gradient descent), and a suspect is flagged when it scores the owner's unseen training images higher than public ones; it can only see what the victim memorised, so it reads the gap between the victim's training and test accuracy. Entangled watermarks (ewe, Jia et al.) add the same trigger on images of one source class, labelled the target, and train the victim to give them the target class's clean features (the soft nearest-neighbour loss between the two, maximised), so that students inherit them; their test is BadNets' on stamped source-class images. move-patch is MOVE with a white square instead of the style, labels unchanged.</p>
<pre>{{.Defences}}</pre>
{{range .Saliency}}<figure><img src="{{.Src}}" alt="saliency"><figcaption>{{.Caption}}</figcaption></figure>{{end}}{{end}}
{{if .R.Claims}}<h2>False claims</h2>
<p>A dishonest claimant tries to have the test accuse a model that was never theirs. "Convicted" means a verdict of "stolen" in either mode (for style shopping, with the claimant's best style and no correction for the tries).</p>
<table><tr><th>scenario</th><th>target</th><th>white-box p</th><th>black-box p</th><th>black-box p, paper's test</th><th>Bonferroni (white / black)</th><th>convicted</th><th style="text-align:left">what the claimant does</th></tr>
{{range .R.Claims}}<tr><td>{{.Scenario}}</td><td>{{.Target}}</td><td>{{p (index .Verdicts "white")}}</td><td>{{p (index .Verdicts "black")}}</td><td>{{up (index .Verdicts "black")}}</td><td>{{if .Bonf}}{{printf "%.3g" (index .Bonf "white")}} / {{printf "%.3g" (index .Bonf "black")}}{{else}}–{{end}}</td><td class="{{if .Convicted}}bad{{else}}ok{{end}}">{{.Convicted}}</td><td style="text-align:left">{{.Description}}</td></tr>{{end}}</table>
{{end}}
<h2>Harmlessness</h2>
{{if .Harmless}}<p>{{.Harmless}}</p>{{end}}
<figure>{{.AccPlot}}<figcaption>Test accuracy of the victim (trained with the external features), the benign models and every suspect.</figcaption></figure>
<table><tr><th>model</th><th>accuracy %</th><th>training time</th><th>role</th></tr>
{{range .R.Models}}<tr><td>{{.Name}}</td><td>{{pct .Accuracy}}</td><td>{{secs .Seconds}}</td><td style="text-align:left">{{.Role}}</td></tr>{{end}}</table>
<h2>External features</h2>
<div class="imgs">{{if .Style}}<figure><img src="{{.Style}}" alt="style image" style="max-width:240px"><figcaption>Style image</figcaption></figure>{{end}}
{{if .Samples}}<figure><img src="{{.Samples}}" alt="original and styled training images"><figcaption>Training images of the key, each original followed by its styled version</figcaption></figure>{{end}}</div>
{{range .Sweeps}}<h2>Sweep: {{.Name}}</h2><figure>{{.SVG}}<figcaption>{{.Caption}}</figcaption></figure>{{end}}
<h2>Terminal table</h2><pre>{{.Table}}</pre>
<h2>Configuration</h2><pre>{{printf "%+v" .R.Config.Profile}}</pre>
</body></html>
`))

// svg helpers: a plot area of w x h with margins.
const (
	plotW, plotH           = 900, 320
	padL, padR, padT, padB = 90, 160, 20, 70
)

func svgOpen(b *strings.Builder, h int) {
	fmt.Fprintf(b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" font-family="sans-serif" font-size="12">`, plotW, h)
}

var modeColour = map[string]string{features.White: "#1f77b4", features.Black: "#ff7f0e"}

func pPlot(res *Results) string {
	var b strings.Builder
	svgOpen(&b, plotH)
	n := len(res.Rows)
	if n == 0 {
		b.WriteString("</svg>")
		return b.String()
	}
	// y: -log10(p) from 0 up to the largest (capped at 300).
	top := 2.0
	for _, r := range res.Rows {
		for _, v := range []*Verdict{r.White, r.Black} {
			if v != nil {
				top = math.Max(top, nlog(v.P))
			}
		}
	}
	top = math.Ceil(top)
	ih := float64(plotH - padT - padB)
	iw := float64(plotW - padL - padR)
	y := func(v float64) float64 { return float64(padT) + ih*(1-v/top) }
	for t := 0.0; t <= top; t += math.Max(1, math.Ceil(top/8)) {
		fmt.Fprintf(&b, `<line x1="%d" x2="%.0f" y1="%.1f" y2="%.1f" stroke="#eee"/><text x="%d" y="%.1f" text-anchor="end">1e-%g</text>`,
			padL, float64(padL)+iw, y(t), y(t), padL-6, y(t)+4, t)
	}
	alpha := res.Config.Profile.Alpha
	fmt.Fprintf(&b, `<line x1="%d" x2="%.0f" y1="%.1f" y2="%.1f" stroke="#c00" stroke-dasharray="5,4"/><text x="%.0f" y="%.1f" fill="#c00">α = %g</text>`,
		padL, float64(padL)+iw, y(nlog(alpha)), y(nlog(alpha)), float64(padL)+iw+6, y(nlog(alpha))+4, alpha)
	slot := iw / float64(n)
	bw := slot / 3
	for i, r := range res.Rows {
		x0 := float64(padL) + slot*float64(i) + slot/6
		for k, mode := range features.Modes {
			v := r.verdict(mode)
			if v == nil {
				continue
			}
			h := nlog(v.P)
			fmt.Fprintf(&b, `<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="%s"><title>%s %s-box p = %s</title></rect>`,
				x0+float64(k)*bw, y(h), bw-2, y(0)-y(h), modeColour[mode], r.Label, mode, pval(v))
		}
		fmt.Fprintf(&b, `<text x="%.1f" y="%d" text-anchor="end" transform="rotate(-30 %.1f %d)">%s</text>`,
			x0+bw, plotH-padB+16, x0+bw, plotH-padB+16, template.HTMLEscapeString(r.Label))
	}
	legend(&b, float64(padL)+iw+20, padT+30)
	fmt.Fprintf(&b, `<text x="14" y="%d" transform="rotate(-90 14 %d)" text-anchor="middle">p-value</text></svg>`, plotH/2, plotH/2)
	return b.String()
}

func legend(b *strings.Builder, x float64, y int) {
	for k, mode := range features.Modes {
		fmt.Fprintf(b, `<rect x="%.0f" y="%d" width="12" height="12" fill="%s"/><text x="%.0f" y="%d">%s-box</text>`,
			x, y+k*18, modeColour[mode], x+18, y+k*18+10, mode)
	}
}

func nlog(p float64) float64 {
	if p <= 1e-300 {
		return 300
	}
	return -math.Log10(p)
}

func probPlot(res *Results) string {
	var b strings.Builder
	h := plotH + 40
	svgOpen(&b, h)
	n := len(res.Rows)
	ih := float64(h - padT - padB)
	iw := float64(plotW - padL - padR)
	y := func(v float64) float64 { return float64(padT) + ih*(1-v) }
	for _, t := range []float64{0, 0.25, 0.5, 0.75, 1} {
		fmt.Fprintf(&b, `<line x1="%d" x2="%.0f" y1="%.1f" y2="%.1f" stroke="#eee"/><text x="%d" y="%.1f" text-anchor="end">%.2f</text>`,
			padL, float64(padL)+iw, y(t), y(t), padL-6, y(t)+4, t)
	}
	if n > 0 {
		slot := iw / float64(n)
		for i, r := range res.Rows {
			x0 := float64(padL) + slot*float64(i)
			for k, mode := range features.Modes {
				v := r.verdict(mode)
				if v == nil {
					continue
				}
				xs := x0 + slot*(0.2+0.35*float64(k))
				for j := range v.ProbSuspect {
					jit := float64((j*37)%11-5) * 1.2
					fmt.Fprintf(&b, `<circle cx="%.1f" cy="%.1f" r="2.5" fill="%s" fill-opacity="0.7"/>`, xs+jit, y(v.ProbSuspect[j]), modeColour[mode])
					fmt.Fprintf(&b, `<circle cx="%.1f" cy="%.1f" r="2.5" fill="none" stroke="%s" stroke-opacity="0.7"/>`, xs+slot*0.15+jit, y(v.ProbBenign[j]), modeColour[mode])
				}
			}
			fmt.Fprintf(&b, `<text x="%.1f" y="%d" text-anchor="end" transform="rotate(-30 %.1f %d)">%s</text>`,
				x0+slot/2, h-padB+16, x0+slot/2, h-padB+16, template.HTMLEscapeString(r.Label))
		}
	}
	legend(&b, float64(padL)+iw+20, padT+30)
	fmt.Fprintf(&b, `<text x="%.0f" y="%d">filled: suspect</text><text x="%.0f" y="%d">open: benign reference</text>`,
		float64(padL)+iw+20, padT+80, float64(padL)+iw+20, padT+96)
	fmt.Fprintf(&b, `<text x="14" y="%d" transform="rotate(-90 14 %d)" text-anchor="middle">P(victim)</text></svg>`, h/2, h/2)
	return b.String()
}

func accPlot(res *Results) string {
	type bar struct {
		name string
		acc  float64
		col  string
	}
	var bars []bar
	for _, m := range res.Models {
		col := "#2ca02c"
		if m.Name == "victim" {
			col = "#d62728"
		}
		bars = append(bars, bar{m.Name, m.Accuracy, col})
	}
	for _, r := range res.Rows {
		bars = append(bars, bar{r.Label, r.Accuracy, "#9467bd"})
	}
	var b strings.Builder
	svgOpen(&b, plotH)
	ih := float64(plotH - padT - padB)
	iw := float64(plotW - padL - padR)
	y := func(v float64) float64 { return float64(padT) + ih*(1-v) }
	for _, t := range []float64{0, 0.25, 0.5, 0.75, 1} {
		fmt.Fprintf(&b, `<line x1="%d" x2="%.0f" y1="%.1f" y2="%.1f" stroke="#eee"/><text x="%d" y="%.1f" text-anchor="end">%.0f%%</text>`,
			padL, float64(padL)+iw, y(t), y(t), padL-6, y(t)+4, 100*t)
	}
	if len(bars) > 0 {
		slot := iw / float64(len(bars))
		for i, br := range bars {
			x := float64(padL) + slot*float64(i) + slot*0.15
			fmt.Fprintf(&b, `<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="%s"><title>%s: %.2f%%</title></rect><text x="%.1f" y="%.1f" text-anchor="middle" font-size="10">%.1f</text>`,
				x, y(br.acc), slot*0.7, y(0)-y(br.acc), br.col, br.name, 100*br.acc, x+slot*0.35, y(br.acc)-3, 100*br.acc)
			fmt.Fprintf(&b, `<text x="%.1f" y="%d" text-anchor="end" transform="rotate(-30 %.1f %d)">%s</text>`,
				x+slot*0.35, plotH-padB+16, x+slot*0.35, plotH-padB+16, template.HTMLEscapeString(br.name))
		}
	}
	b.WriteString(`</svg>`)
	return b.String()
}

// palette colours the series of the sweep plots.
var palette = []string{"#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f"}

type sweepView struct {
	Name, Caption string
	SVG           template.HTML
}

func sweepPlots(res *Results) []sweepView {
	var out []sweepView
	for _, name := range slices.Sorted(maps.Keys(res.Sweeps)) {
		items := res.Sweeps[name]
		if len(items) == 0 {
			continue
		}
		series := sweepSeries(items)
		lo, hi, top := items[0].Value, items[0].Value, 2.0
		for _, it := range items {
			lo, hi = math.Min(lo, it.Value), math.Max(hi, it.Value)
			for _, p := range it.P {
				top = math.Max(top, nlog(p))
			}
		}
		if hi == lo {
			hi = lo + 1
		}
		top = math.Ceil(top)
		var b strings.Builder
		svgOpen(&b, plotH)
		ih := float64(plotH - padT - padB)
		iw := float64(plotW - padL - padR)
		x := func(v float64) float64 { return float64(padL) + iw*(v-lo)/(hi-lo) }
		y := func(v float64) float64 { return float64(padT) + ih*(1-v/top) }
		for t := 0.0; t <= top; t += math.Max(1, math.Ceil(top/8)) {
			fmt.Fprintf(&b, `<line x1="%d" x2="%.0f" y1="%.1f" y2="%.1f" stroke="#eee"/><text x="%d" y="%.1f" text-anchor="end">1e-%g</text>`,
				padL, float64(padL)+iw, y(t), y(t), padL-6, y(t)+4, t)
		}
		for _, it := range items {
			fmt.Fprintf(&b, `<text x="%.1f" y="%d" text-anchor="middle">%s</text>`, x(it.Value), plotH-padB+16, template.HTMLEscapeString(it.name()))
		}
		alpha := res.Config.Profile.Alpha
		fmt.Fprintf(&b, `<line x1="%d" x2="%.0f" y1="%.1f" y2="%.1f" stroke="#c00" stroke-dasharray="5,4"/>`, padL, float64(padL)+iw, y(nlog(alpha)), y(nlog(alpha)))
		for si, s := range series {
			col := palette[si%len(palette)]
			var pts []string
			for _, it := range items {
				if p, ok := it.P[s]; ok { // a value that did not follow s has no point (the table's "-")
					pts = append(pts, fmt.Sprintf("%.1f,%.1f", x(it.Value), y(nlog(p))))
				}
			}
			fmt.Fprintf(&b, `<polyline points="%s" fill="none" stroke="%s" stroke-width="2"/>`, strings.Join(pts, " "), col)
			fmt.Fprintf(&b, `<rect x="%.0f" y="%d" width="12" height="12" fill="%s"/><text x="%.0f" y="%d">%s</text>`,
				float64(padL)+iw+20, padT+30+si*18, col, float64(padL)+iw+38, padT+40+si*18, template.HTMLEscapeString(s))
		}
		fmt.Fprintf(&b, `<text x="%.0f" y="%d" text-anchor="middle">%s</text></svg>`, float64(padL)+iw/2, plotH-20, template.HTMLEscapeString(name))
		caption := "p-value against " + name + "."
		if items[0].Points != nil {
			var parts []string
			for _, it := range items {
				t := tallyPoints(it.Points)
				parts = append(parts, fmt.Sprintf("%s = %s: %d of %d thefts flagged, %d of %d innocents accused (rate <= %.3f)",
					name, it.name(), t.Flagged, t.Thefts, t.Accused, t.Innocents, t.RateUpper))
			}
			caption += " Every suspect re-verified white-box (results.json has each one's verdict): " + strings.Join(parts, "; ") + "."
		}
		out = append(out, sweepView{Name: name, Caption: caption, SVG: template.HTML(b.String())})
		if items[0].DeltaMu != nil {
			out = append(out, sweepView{Name: name + " (delta-mu)", Caption: "delta-mu (suspect minus reference) against " + name + "; the dashed line is the verdict's margin.",
				SVG: template.HTML(deltaPlot(items, series, name, res.Config.Profile.MinDelta))})
		}
	}
	return out
}

// deltaPlot draws each series' delta-mu against the swept value, on a linear axis with the
// margin marked.
func deltaPlot(items []SweepItem, series []string, name string, margin float64) string {
	lo, hi := items[0].Value, items[0].Value
	dlo, dhi := math.Min(0, margin), math.Max(0.1, margin)
	for _, it := range items {
		lo, hi = math.Min(lo, it.Value), math.Max(hi, it.Value)
		for _, d := range it.DeltaMu {
			dlo, dhi = math.Min(dlo, d), math.Max(dhi, d)
		}
	}
	if hi == lo {
		hi = lo + 1
	}
	var b strings.Builder
	svgOpen(&b, plotH)
	ih := float64(plotH - padT - padB)
	iw := float64(plotW - padL - padR)
	x := func(v float64) float64 { return float64(padL) + iw*(v-lo)/(hi-lo) }
	y := func(v float64) float64 { return float64(padT) + ih*(dhi-v)/(dhi-dlo) }
	for _, t := range []float64{dlo, 0, dhi} {
		fmt.Fprintf(&b, `<line x1="%d" x2="%.0f" y1="%.1f" y2="%.1f" stroke="#eee"/><text x="%d" y="%.1f" text-anchor="end">%.2f</text>`,
			padL, float64(padL)+iw, y(t), y(t), padL-6, y(t)+4, t)
	}
	for _, it := range items {
		fmt.Fprintf(&b, `<text x="%.1f" y="%d" text-anchor="middle">%s</text>`, x(it.Value), plotH-padB+16, template.HTMLEscapeString(it.name()))
	}
	fmt.Fprintf(&b, `<line x1="%d" x2="%.0f" y1="%.1f" y2="%.1f" stroke="#c00" stroke-dasharray="5,4"/>`, padL, float64(padL)+iw, y(margin), y(margin))
	for si, s := range series {
		col := palette[si%len(palette)]
		var pts []string
		for _, it := range items {
			if d, ok := it.DeltaMu[s]; ok {
				pts = append(pts, fmt.Sprintf("%.1f,%.1f", x(it.Value), y(d)))
			}
		}
		fmt.Fprintf(&b, `<polyline points="%s" fill="none" stroke="%s" stroke-width="2"/>`, strings.Join(pts, " "), col)
		fmt.Fprintf(&b, `<rect x="%.0f" y="%d" width="12" height="12" fill="%s"/><text x="%.0f" y="%d">%s</text>`,
			float64(padL)+iw+20, padT+30+si*18, col, float64(padL)+iw+38, padT+40+si*18, template.HTMLEscapeString(s))
	}
	fmt.Fprintf(&b, `<text x="%.0f" y="%d" text-anchor="middle">%s</text></svg>`, float64(padL)+iw/2, plotH-20, template.HTMLEscapeString(name))
	return b.String()
}

// qqPlot draws the innocents' p-values against the uniform distribution's quantiles, per
// mode, on log axes: points below the diagonal are innocents with smaller p-values than a
// valid test gives (the failure that matters); the dashed line marks alpha.
func qqPlot(res *Results) string {
	series := map[string][]float64{}
	for _, r := range res.Rows {
		if r.Stolen {
			continue
		}
		for _, mode := range features.Modes {
			if v := r.verdict(mode); v != nil {
				series[mode] = append(series[mode], math.Max(v.P, 1e-300))
			}
		}
	}
	if len(series) == 0 {
		return ""
	}
	const side = 360
	lo := 1e-6
	for _, ps := range series {
		for _, p := range ps {
			lo = math.Min(lo, p)
		}
	}
	lo = math.Pow(10, math.Floor(math.Log10(lo)))
	pos := func(p float64) float64 {
		return (math.Log10(math.Max(p, lo)) - math.Log10(lo)) / -math.Log10(lo) * side
	}
	var b strings.Builder
	w, h := side+padL+padR, side+padT+padB
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" font-family="sans-serif" font-size="12">`, w, h)
	x0, y0 := float64(padL), float64(padT+side)
	fmt.Fprintf(&b, `<rect x="%d" y="%d" width="%d" height="%d" fill="none" stroke="#999"/>`, padL, padT, side, side)
	fmt.Fprintf(&b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#888"/>`, x0, y0, x0+side, y0-side)
	for e := math.Log10(lo); e <= 0; e++ {
		t := pos(math.Pow(10, e))
		fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" text-anchor="middle">1e%d</text>`, x0+t, y0+16, int(e))
		fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" text-anchor="end">1e%d</text>`, x0-6, y0-t+4, int(e))
	}
	if a := res.Config.Profile.Alpha; a > 0 {
		t := pos(a)
		fmt.Fprintf(&b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#c00" stroke-dasharray="4 3"/>`, x0, y0-t, x0+side, y0-t)
	}
	fmt.Fprintf(&b, `<text x="%.1f" y="%d" text-anchor="middle">uniform quantile (expected p-value of a valid test)</text>`, x0+side/2, padT+side+44)
	fmt.Fprintf(&b, `<text transform="translate(18 %.1f) rotate(-90)" text-anchor="middle">innocent's p-value</text>`, y0-side/2)
	ly := padT + 10
	for _, mode := range features.Modes {
		ps := append([]float64(nil), series[mode]...)
		if len(ps) == 0 {
			continue
		}
		slices.Sort(ps)
		n := float64(len(ps))
		for i, p := range ps {
			q := (float64(i) + 0.5) / n
			fmt.Fprintf(&b, `<circle cx="%.1f" cy="%.1f" r="3" fill="%s" fill-opacity="0.7"/>`, x0+pos(q), y0-pos(p), modeColour[mode])
		}
		fmt.Fprintf(&b, `<circle cx="%d" cy="%d" r="4" fill="%s"/><text x="%d" y="%d">%s-box (%d)</text>`,
			padL+side+14, ly, modeColour[mode], padL+side+24, ly+4, mode, len(ps))
		ly += 18
	}
	b.WriteString(`</svg>`)
	return b.String()
}

// img is the file at path as a data URL ("" when it cannot be read).
func img(path, mime string) template.URL {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	return template.URL("data:" + mime + ";base64," + base64.StdEncoding.EncodeToString(b))
}

type picture struct {
	Src     template.URL
	Caption string
}

// saliencyPictures are the detection studies' saliency sheets, embedded.
func saliencyPictures(res *Results) []picture {
	var out []picture
	for _, d := range res.Detections {
		if d.Picture == "" {
			continue
		}
		src := img(filepath.Join(res.Config.Out, d.Picture), "image/png")
		if src == "" {
			continue
		}
		out = append(out, picture{Src: src, Caption: fmt.Sprintf("Saliency of %s: %s (top) and its Grad-CAM maps (bottom, red).", detectionSubject(d.Victim), d.Marked)})
	}
	return out
}
