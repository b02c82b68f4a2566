package experiment

import (
	"bytes"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"move/internal/verify"
)

func TestHarmlessnessAgainstTheBenignMean(t *testing.T) {
	res := &Results{Models: []ModelFigure{{Name: "victim", Accuracy: 0.80}, {Name: "benign1", Accuracy: 0.81}, {Name: "benign2", Accuracy: 0.83}}}
	v, b, n, ok := Harmlessness(res)
	if !ok || v != 0.80 || math.Abs(b-0.82) > 1e-12 || n != 2 {
		t.Fatalf("Harmlessness = %v, %v, %d, %v; want 0.80, 0.82, 2, true", v, b, n, ok)
	}
	var buf bytes.Buffer
	WriteTable(&buf, res)
	if !strings.Contains(buf.String(), "-2.00 points from the mean of the 2 benign models (82.00%)") {
		t.Errorf("table:\n%s", buf.String())
	}
	if _, _, _, ok := Harmlessness(&Results{Models: []ModelFigure{{Name: "benign1"}}}); ok {
		t.Error("no victim: want ok = false")
	}
}

func TestSweepTable(t *testing.T) {
	res := &Results{Sweeps: map[string][]SweepItem{
		"m": {{Value: 5, P: map[string]float64{"black/Direct-copy": 0.0392, "white/Independent": 0.832}},
			{Value: 50, P: map[string]float64{"black/Direct-copy": 9.5e-12}}},
	}}
	var buf bytes.Buffer
	WriteTable(&buf, res)
	out := buf.String()
	lines := strings.Split(out[strings.Index(out, "sweep of m"):], "\n")
	want := [][]string{{"m", "black/Direct-copy", "white/Independent"}, {"5", "0.0392", "0.832"}, {"50", "9.5e-12", "-"}}
	for i, w := range want {
		if got := strings.Fields(lines[i+1]); strings.Join(got, " ") != strings.Join(w, " ") {
			t.Errorf("sweep table line %d = %q, want %q\n%s", i+1, got, w, out)
		}
	}
}

// An m sweep that re-verified every suspect prints each one's p-value per m, marked when
// stolen, and per m the thefts flagged and the innocents accused with the rate's bound.
func TestSweepPointsTable(t *testing.T) {
	pt := func(p float64, verdict string, theft bool) SweepPoint {
		return SweepPoint{P: p, Verdict: verdict, Stolen: theft}
	}
	res := &Results{
		Rows: []Row{{Label: "Distillation", Stolen: true}, {Label: "Distill→FT", Stolen: true}, {Label: "seed-1"}, {Label: "owner-data-1"}, {Label: "constant-1", Served: "constant"}},
		Sweeps: map[string][]SweepItem{"m": {
			{Value: 10, P: map[string]float64{}, Points: map[string]SweepPoint{"white/Distillation": pt(1e-4, verify.Stolen, true),
				"white/Distill→FT": pt(0.0143, verify.NotStolen, true), "white/seed-1": pt(0.68, verify.NotStolen, false), "white/owner-data-1": pt(0.265, verify.NotStolen, false)}},
			{Value: 100, P: map[string]float64{}, Points: map[string]SweepPoint{"white/Distillation": pt(7.9e-23, verify.Stolen, true),
				"white/Distill→FT": pt(5.1e-10, verify.Stolen, true), "white/seed-1": pt(0.87, verify.NotStolen, false), "white/owner-data-1": pt(0.0071, verify.Stolen, false)}},
		}},
	}
	var buf bytes.Buffer
	WriteTable(&buf, res)
	out := buf.String()
	out = out[strings.Index(out, "sweep of m: every"):]
	for _, want := range [][]string{
		{"Distillation", "theft", "0.0001*", "7.9e-23*"},
		{"Distill→FT", "theft", "0.0143", "5.1e-10*"},
		{"owner-data-1", "innocent", "0.265", "0.0071*"},
		{"10", "1", "of", "2", "0", "of", "2", "0.842"},
		{"100", "2", "of", "2", "1", "of", "2", "0.987"},
	} {
		if !slices.ContainsFunc(strings.Split(out, "\n"), func(l string) bool { return slices.Equal(strings.Fields(l), want) }) {
			t.Errorf("no line %q in\n%s", want, out)
		}
	}
	if strings.Contains(out, "constant-1") {
		t.Errorf("the served constant has no point but was printed:\n%s", out)
	}
}

// The claims table marks a refused ranking and an inconclusive verdict and says why.
func TestClaimsTableRefusedAndInconclusive(t *testing.T) {
	res := &Results{Claims: []ClaimResult{{Scenario: ClaimWeakBenign, Target: "wt.safetensors", Verdicts: map[string]*Verdict{
		"white": {Verdict: Refused, P: 1, Why: "benign model 1 answers the key's originals 41.9% right"},
		"black": {Verdict: "inconclusive", P: 0.0367, Why: "the reference answers the key's originals 39.4% right"},
	}}}}
	var buf bytes.Buffer
	writeClaims(&buf, res)
	out := buf.String()
	for _, want := range []string{"refused", "0.0367 i", "white-box refused: benign model 1 answers", "black-box inconclusive: the reference answers"} {
		if !strings.Contains(out, want) {
			t.Errorf("claims table lacks %q:\n%s", want, out)
		}
	}
}

// Wrong names every wrong verdict, missed thefts before accused innocents, white-box first;
// a right table has none.
func TestWrongVerdicts(t *testing.T) {
	yes, no := &Verdict{Stolen: true}, &Verdict{}
	res := &Results{Rows: []Row{
		{Label: "Direct-copy", Stolen: true, White: yes, Black: yes},
		{Label: "Distillation", Stolen: true, White: no, Black: no},
		{Label: "Label-query", Stolen: true, White: no, Black: yes},
		{Label: "Independent", White: no, Black: no},
		{Label: "seed-1", White: yes, Black: no},
		{Label: "constant-1", Black: no},
	}}
	want := []string{"white-box missed Distillation, Label-query", "black-box missed Distillation", "white-box accused seed-1"}
	if got := Wrong(res); !slices.Equal(got, want) || Correct(res) {
		t.Errorf("Wrong = %q (Correct %v), want %q", got, Correct(res), want)
	}
	res.Rows = res.Rows[:1]
	if got := Wrong(res); len(got) != 0 || !Correct(res) {
		t.Errorf("a right table: Wrong = %q, Correct %v", got, Correct(res))
	}
}

// The run's warnings and its wrong verdicts reach the terminal table and the report.
func TestWarningsAndWrongVerdictsShown(t *testing.T) {
	res := &Results{Config: Config{Out: t.TempDir(), Profile: Profile{Alpha: 0.01}}, Warnings: []string{"the originals are grey"},
		Rows: []Row{{Label: "Distillation", Stolen: true, White: &Verdict{P: 0.35}, Black: &Verdict{P: 1}}}}
	var b bytes.Buffer
	WriteTable(&b, res)
	if !strings.Contains(b.String(), "warning: the originals are grey\n") {
		t.Errorf("the table lacks the warning:\n%s", b.String())
	}
	if err := WriteReport(res); err != nil {
		t.Fatal(err)
	}
	html, err := os.ReadFile(filepath.Join(res.Config.Out, "report.html"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"<b>Warning:</b> the originals are grey", "white-box missed Distillation; black-box missed Distillation"} {
		if !strings.Contains(string(html), want) {
			t.Errorf("the report lacks %q", want)
		}
	}
}
