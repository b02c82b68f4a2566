package experiment

import (
	"bytes"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"move/internal/innocent"
	"move/internal/style"
)

// An innocent carrying its own watermark is verified with that watermark's style as a
// rebuttal: the procedural style it was trained with, applied with the profile's transfer.
// Other suspects get none.
func TestRebuttalsAreTheInnocentsOwnStyle(t *testing.T) {
	p := tiny()
	r := &runner{cfg: Config{Profile: p, Innocents: 6, Seed: 3}}
	var om *innocent.Spec
	for _, sp := range r.innocentSpecs() {
		if sp.Kind == innocent.OtherMark {
			om = &sp
			break
		}
	}
	if om == nil {
		t.Fatal("no other-watermark innocent among 6")
	}
	if rb := r.rebuttals(Row{Attack: "copy"}); rb != nil {
		t.Errorf("the copy has rebuttals %v", rb)
	}
	if rb := r.rebuttals(Row{Attack: "innocent-seed-1", Kind: innocent.Seed}); rb != nil {
		t.Errorf("a seed innocent has rebuttals %v", rb)
	}
	rb := r.rebuttals(Row{Attack: "innocent-" + om.Name, Kind: innocent.OtherMark})
	if len(rb) != 1 {
		t.Fatalf("%s: %d rebuttals, want its own style", om.Name, len(rb))
	}
	rng := rand.New(rand.NewPCG(1, 2))
	imgs := make([][]uint8, 3)
	for i := range imgs {
		imgs[i] = make([]uint8, 16*16*3)
		for j := range imgs[i] {
			imgs[i][j] = uint8(rng.IntN(256))
		}
	}
	got, err := rb[0].Apply(imgs, 16, 16)
	if err != nil {
		t.Fatal(err)
	}
	pix, h, w := style.Control(om.Style)
	tr, err := style.New(pix, h, w, p.Style)
	if err != nil {
		t.Fatal(err)
	}
	want := tr.Apply(imgs, 16, 16)
	again, _ := rb[0].Apply(imgs[1:], 16, 16)
	for i := range want {
		if !bytes.Equal(got[i], want[i]) {
			t.Fatalf("image %d is not restyled with procedural style %d", i, om.Style)
		}
		if i > 0 && !bytes.Equal(again[i-1], want[i]) {
			t.Fatalf("a second call restyles image %d differently", i)
		}
	}
}

// The innocents' summary says what the statistics alone would have done to a rebutted one.
func TestInnocentsTableShowsRebuttals(t *testing.T) {
	res := &Results{Config: Config{Profile: Profile{Alpha: 0.01}}, Innocents: map[string]innocent.Summary{"black": {Tested: 1}},
		Rows: []Row{{Label: "other-watermark-2", Black: &Verdict{P: 0.9, Rebuttals: []string{"its own style"}, UnrebuttedP: 1e-4}},
			{Label: "other-watermark-1", Black: &Verdict{P: 0.8, Rebuttals: []string{"its own style"}, UnrebuttedP: 0.5}},
			{Label: "seed-1", Black: &Verdict{P: 0.5}}}}
	var b bytes.Buffer
	writeInnocents(&b, res)
	out := b.String()
	for _, want := range []string{"other-watermark-2: black p 0.9 with its own style", "0.0001 without: ACCUSED on the statistics alone",
		"other-watermark-1: black p 0.8", "0.5 without: cleared"} {
		if !strings.Contains(out, want) {
			t.Errorf("the innocents' table lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "seed-1") {
		t.Errorf("a suspect without rebuttal is listed:\n%s", out)
	}
	res.Config.Out = t.TempDir()
	if err := WriteReport(res); err != nil {
		t.Fatal(err)
	}
	html, err := os.ReadFile(filepath.Join(res.Config.Out, "report.html"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(html), "with its own earlier watermark as a rebuttal; 0.0001 on the statistics alone") {
		t.Errorf("the report does not show the rebuttal")
	}
}
