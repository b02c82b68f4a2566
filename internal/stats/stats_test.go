package stats

import (
	"math"
	"testing"

	"gonum.org/v1/gonum/floats/scalar"
)

// Reference values from SciPy 1.10 (Debian python3-scipy): scipy.stats.ttest_rel(s, b,
// alternative="greater") and ttest_ind(s, b, equal_var=False[, alternative="greater"]), on
// samples drawn with numpy.random.default_rng(0); testdata/scipy_reference.py prints them.
var references = []struct {
	S, B                                             []float64
	PairedT, PairedP, WelchT, WelchP2, WelchPGreater float64
}{
	{S: []float64{0.636962, 0.269787, 0.040974, 0.016528, 0.81327, 0.912756, 0.606636, 0.729497, 0.543625, 0.935072}, B: []float64{0.524635, 0.22392, -0.241529, -0.055351, 0.638679, 0.789529, 0.50221, 0.647867, 0.534788, 0.989323}, PairedT: 3.28344644109137, PairedP: 0.00473848608873063, WelchT: 0.595532358187504, WelchP2: 0.559000671150775, WelchPGreater: 0.279500335575387},
	{S: []float64{0.02832, 0.124283, 0.670624, 0.64719, 0.615385, 0.383678, 0.99721, 0.980835, 0.685542, 0.650459, 0.688447, 0.388921}, B: []float64{0.135097, 0.721488, 0.525354, 0.310242, 0.485835, 0.889488, 0.934044, 0.357795, 0.57153, 0.321869, 0.5943, 0.337911}, PairedT: 0.576117091184322, PairedP: 0.288066824033889, WelchT: 0.509818059400145, WelchP2: 0.615447096891438, WelchPGreater: 0.307723548445719},
	{S: []float64{0.939162, 0.989027, 0.922716, 0.962319, 0.908402}, B: []float64{0.083264, 0.07871, 0.023937, 0.087648, 0.005857}, PairedT: 88.1198321851577, PairedP: 4.97111535555028e-08, WelchT: 39.9142102197468, WelchP2: 2.8308859475892e-10, WelchPGreater: 1.4154429737946e-10},
}

func near(t *testing.T, what string, got, want float64) {
	t.Helper()
	if !scalar.EqualWithinAbsOrRel(got, want, 0, 1e-6) {
		t.Errorf("%s = %.15g, want %.15g", what, got, want)
	}
}

func TestAgainstSciPy(t *testing.T) {
	for _, r := range references {
		p, err := PairedT(r.S, r.B, Greater)
		if err != nil {
			t.Fatal(err)
		}
		near(t, "paired t", p.Statistic, r.PairedT)
		near(t, "paired p (greater)", p.P, r.PairedP)
		w, _ := WelchT(r.S, r.B, TwoSided)
		near(t, "Welch t", w.Statistic, r.WelchT)
		near(t, "Welch p (two-sided)", w.P, r.WelchP2)
		g, _ := WelchT(r.S, r.B, Greater)
		near(t, "Welch p (greater)", g.P, r.WelchPGreater)
	}
}

func TestDegenerate(t *testing.T) {
	same := []float64{0.5, 0.5, 0.5}
	if r, _ := PairedT(same, same, Greater); r.P != 1 {
		t.Fatalf("identical samples: p = %g, want 1", r.P)
	}
	if r, _ := PairedT([]float64{1, 1, 1}, []float64{0, 0, 0}, Greater); r.P != 0 || !math.IsInf(r.Statistic, 1) {
		t.Fatalf("constant positive difference: %+v", r)
	}
	if r, _ := PairedT([]float64{0, 0, 0}, []float64{1, 1, 1}, Greater); r.P != 1 {
		t.Fatalf("constant negative difference, one-tailed: p = %g, want 1", r.P)
	}
	if _, err := PairedT([]float64{1}, []float64{0}, Greater); err == nil {
		t.Fatal("one pair accepted")
	}
	if _, err := PairedT([]float64{1, math.NaN()}, []float64{0, 0}, Greater); err == nil {
		t.Fatal("NaN accepted")
	}
	if got := HarmonicMeanP([]float64{0.1, 0.2, 0.4}); math.Abs(got-3/(10+5+2.5)) > 1e-15 {
		t.Fatalf("harmonic mean %g", got)
	}
	if got := MedianP([]float64{0.3, 0.1, 0.2, 0.9}); got != 0.25 {
		t.Fatalf("median %g", got)
	}
}

// Reference values from the t table: t(0.99, 8) = 2.896 < 3 = 1·√9 while t(0.99, 7) = 2.998 >
// 2.83 = 1·√8; t(0.99, 24) = 2.492 < 2.5 = 0.5·√25 while t(0.99, 23) = 2.500 > 2.449 = 0.5·√24.
func TestSamplesToReject(t *testing.T) {
	for _, c := range []struct {
		d     float64
		alpha float64
		want  int
	}{{1, 0.01, 9}, {0.5, 0.01, 25}, {0, 0.01, 0}, {-1, 0.01, 0}, {0.01, 0.01, 0}, {math.Inf(1), 0.01, 2}} {
		if got := SamplesToReject(c.d, c.alpha, 1000); got != c.want {
			t.Errorf("SamplesToReject(%g, %g) = %d, want %d", c.d, c.alpha, got, c.want)
		}
	}
	r, err := PairedT([]float64{3, 4, 5, 6}, []float64{1, 1, 1, 1}, Greater)
	if err != nil {
		t.Fatal(err)
	}
	// differences 2, 3, 4, 5: mean 3.5, sd 1.291: d = 2.711
	if got := EffectSize(r); math.Abs(got-3.5/math.Sqrt(5.0/3)) > 1e-12 {
		t.Errorf("effect size %g, want %g", got, 3.5/math.Sqrt(5.0/3))
	}
}

// MeanUpper against printed Student's t quantiles (t(0.95, 4) = 2.131847, t(0.99, 3) =
// 4.540703; the expected bounds computed from them with Python's statistics module).
func TestMeanUpper(t *testing.T) {
	m, u := MeanUpper([]float64{0, 0.01, 0.025, 0, 0.005}, 0.95)
	if !scalar.EqualWithinAbs(m, 0.008, 1e-12) || !scalar.EqualWithinAbsOrRel(u, 0.017884967884383512, 0, 1e-6) {
		t.Errorf("shares: mean %g, bound %g", m, u)
	}
	m, u = MeanUpper([]float64{-1, 2, 0.5, 3}, 0.99)
	if !scalar.EqualWithinAbs(m, 1.125, 1e-12) || !scalar.EqualWithinAbsOrRel(u, 5.098115125, 0, 1e-6) {
		t.Errorf("values: mean %g, bound %g", m, u)
	}
	// Shares are clipped at 1; one share bounds nothing (1); equal values bound at their mean.
	if _, u := MeanUpper([]float64{0.9, 1, 0.2}, 0.95); u != 1 {
		t.Errorf("shares near 1: bound %g, want 1", u)
	}
	if _, u := MeanUpper([]float64{0.3}, 0.95); u != 1 {
		t.Errorf("one share: bound %g, want 1", u)
	}
	if _, u := MeanUpper([]float64{2}, 0.95); !math.IsInf(u, 1) {
		t.Errorf("one value: bound %g, want +Inf", u)
	}
	if m, u := MeanUpper([]float64{0.02, 0.02, 0.02}, 0.95); m != 0.02 || u != 0.02 {
		t.Errorf("equal shares: mean %g, bound %g", m, u)
	}
}
