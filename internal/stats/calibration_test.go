package stats

import (
	"math"
	"testing"
)

// Reference values from SciPy 1.10.1 (Debian's python3-scipy): binom.sf(k-1, n, p),
// beta.ppf for the Clopper-Pearson bounds, and kstest(x, 'uniform').
func TestBinomialUpper(t *testing.T) {
	for _, c := range []struct {
		k, n int
		p    float64
		want float64
	}{
		{7, 10, 0.1, 9.121600000000001e-06},
		{30, 100, 0.1, 2.445112239390972e-08},
		{13, 100, 0.1, 0.19817888735956748},
		{0, 10, 0.1, 1},
		{11, 10, 0.1, 0},
	} {
		got := BinomialUpper(c.k, c.n, c.p)
		if math.Abs(got-c.want) > 1e-9*math.Max(1, c.want) && math.Abs(got-c.want) > 1e-12 {
			t.Errorf("BinomialUpper(%d, %d, %g) = %.17g, want %.17g", c.k, c.n, c.p, got, c.want)
		}
	}
}

func TestClopperPearson(t *testing.T) {
	for _, c := range []struct {
		k, n   int
		lo, hi float64
	}{
		{0, 30, 0, 0.11570330822202779},
		{0, 100, 0, 0.03621669264517641},
		{3, 30, 0.02111713702972257, 0.2652884504742081},
		{30, 30, 0.8842966917779722, 1},
	} {
		lo, hi := ClopperPearson(c.k, c.n, 0.05)
		if math.Abs(lo-c.lo) > 1e-9 || math.Abs(hi-c.hi) > 1e-9 {
			t.Errorf("ClopperPearson(%d, %d) = [%.12g, %.12g], want [%.12g, %.12g]", c.k, c.n, lo, hi, c.lo, c.hi)
		}
	}
}

func TestUniformKS(t *testing.T) {
	x := []float64{0.01, 0.2, 0.35, 0.5, 0.51, 0.7, 0.9, 0.03, 0.04, 0.6}
	u := UniformKS(x)
	if math.Abs(u.D-0.26) > 1e-12 || math.Abs(u.DPlus-0.26) > 1e-12 {
		t.Fatalf("D = %g, D+ = %g, want 0.26 and 0.26", u.D, u.DPlus)
	}
	// SciPy: exact one-sided ("greater") p = 0.21931434799508617.
	if math.Abs(u.PPlus-0.21931434799508617) > 1e-9 {
		t.Errorf("P+ = %.12g, want 0.219314347995", u.PPlus)
	}
	// SciPy: exact two-sided p = 0.435, asymptotic without correction 0.508; Stephens'
	// corrected asymptotic lies close to the exact one.
	if math.Abs(u.P-0.4351) > 0.03 {
		t.Errorf("P = %g, want within 0.03 of the exact 0.4351", u.P)
	}
	// Small p-values in excess are caught; large ones are not an excess.
	small := make([]float64, 40)
	large := make([]float64, 40)
	for i := range small {
		small[i] = 0.002 * float64(i+1) / 40
		large[i] = 0.9 + 0.1*float64(i)/40
	}
	if p := UniformKS(small).PPlus; p > 1e-10 {
		t.Errorf("40 p-values below 0.002: P+ = %g, want tiny", p)
	}
	if p := UniformKS(large).PPlus; p < 0.99 {
		t.Errorf("40 p-values above 0.9: P+ = %g, want about 1", p)
	}
}
