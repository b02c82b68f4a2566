package experiment

import (
	"testing"
	"time"

	"move/internal/steal"
)

// The estimate is the image passes of each stage over the measured rates: twice the rates
// halve it, twice the epochs double the models' share, and every profile has one.
func TestEstimateRun(t *testing.T) {
	r := Rates{Train: 500, Infer: 2000, Style: 5}
	for name, f := range Profiles {
		p := f()
		e := EstimateRun(p, r, 20000, 30000, 10000, p.Innocents, 2)
		if e.Total <= 0 || len(e.Parts) != 6 {
			t.Fatalf("%s: %+v", name, e)
		}
		fast := EstimateRun(p, Rates{Train: 1000, Infer: 4000, Style: 10}, 20000, 30000, 10000, p.Innocents, 2)
		if d := e.Total - 2*fast.Total; d < -time.Second || d > time.Second {
			t.Errorf("%s: %s at the rates, %s at twice them", name, e.Total, fast.Total)
		}
		p2 := p
		p2.Epochs *= 2
		e2 := EstimateRun(p2, r, 20000, 30000, 10000, p.Innocents, 2)
		if d := e2.Parts["victim and benign models"] - 2*e.Parts["victim and benign models"]; d < -time.Second || d > time.Second {
			t.Errorf("%s: twice the epochs: %s, was %s", name, e2.Parts["victim and benign models"], e.Parts["victim and benign models"])
		}
	}
	// The victim and three benign models of 30 epochs on 50,000 images at 500 img/s: 3h20m.
	s := Standard()
	if got := EstimateRun(s, r, 50000, 5000, 5000, 2, 2).Parts["victim and benign models"]; got != 4*30*50000*time.Second/500 {
		t.Errorf("standard: %s for the models", got)
	}
	if s.Name != "standard" || s.Epochs != 30 || s.TrainPerClass != 0 {
		t.Errorf("standard profile: %+v", s)
	}
}

func TestMeasureRates(t *testing.T) {
	p := Demo()
	p.Style.Steps = 8
	r, err := MeasureRates(p, 16, 4)
	if err != nil {
		t.Fatal(err)
	}
	if !(r.Train > 0 && r.Infer > r.Train/2 && r.Style > 0 && r.StylizerSeconds == 0) {
		t.Fatalf("rates %+v", r)
	}
	// A feed-forward profile pays for training each stylizer, then styles faster than
	// optimising each image.
	p.FeedForward = true
	ff, err := MeasureRates(p, 16, 4)
	if err != nil {
		t.Fatal(err)
	}
	if !(ff.StylizerSeconds > 0 && ff.Style > r.Style) {
		t.Fatalf("feed-forward rates %+v, optimising %+v", ff, r)
	}
	e := EstimateRun(p, ff, 1000, 1000, 100, 2, 2)
	if want := time.Duration(3 * ff.StylizerSeconds * float64(time.Second)); e.Parts["embed"] < want {
		t.Errorf("embed estimate %v, want at least three stylizers' training (%v)", e.Parts["embed"], want)
	}
}

// The washing attacks that train do so as long as the attacks they imitate.
func TestWashingEpochs(t *testing.T) {
	p := Quick()
	for _, a := range steal.Attacks() {
		want := 0
		switch {
		case a.Name == "augdistill":
			want = p.DistillEpochs
		case a.Washing && a.Data == steal.ThiefData:
			want = p.FinetuneEpochs
		default:
			continue
		}
		if got := p.attackEpochs(a); got != want {
			t.Errorf("%s trains %d epochs in the quick profile, want %d", a.Name, got, want)
		}
	}
}
