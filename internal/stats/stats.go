// Package stats holds the hypothesis tests of ownership verification: the one-tailed paired
// t-test the MOVE paper specifies, Welch's unequal-variance t-test (what the paper's published
// code computes), and the combination of resampled p-values. p-values come from the Student t
// distribution of gonum's distuv.
package stats

import (
	"errors"
	"fmt"
	"math"

	"gonum.org/v1/gonum/stat/distuv"
)

// Alternative is the alternative hypothesis of a test.
type Alternative int

const (
	// Greater is H1: mean(S) > mean(B) (the suspect looks more like the victim than the benign
	// model does); MOVE's test.
	Greater Alternative = iota
	// TwoSided is H1: mean(S) != mean(B).
	TwoSided
)

// Result is the outcome of a test.
type Result struct {
	Test      string  `json:"test"`
	N         int     `json:"n"`
	Statistic float64 `json:"statistic"`
	DF        float64 `json:"df"`
	P         float64 `json:"p_value"`
	DeltaMu   float64 `json:"delta_mu"` // mean(S) - mean(B)
}

func meanVar(x []float64) (m, v float64) {
	for _, a := range x {
		m += a
	}
	m /= float64(len(x))
	for _, a := range x {
		v += (a - m) * (a - m)
	}
	return m, v / float64(len(x)-1)
}

// pFromT is the p-value of statistic t with df degrees of freedom.
func pFromT(t, df float64, alt Alternative) float64 {
	d := distuv.StudentsT{Mu: 0, Sigma: 1, Nu: df}
	if alt == TwoSided {
		return math.Min(1, 2*d.Survival(math.Abs(t)))
	}
	return d.Survival(t)
}

// PairedT tests the mean of the differences s[i]-b[i] against zero: t = d̄/(s_d/√n) with n-1
// degrees of freedom. When every difference is equal the statistic is ±Inf (or, for zero
// differences, there is no evidence at all and p = 1).
func PairedT(s, b []float64, alt Alternative) (Result, error) {
	if len(s) != len(b) {
		return Result{}, fmt.Errorf("paired t-test: %d and %d samples", len(s), len(b))
	}
	if len(s) < 2 {
		return Result{}, errors.New("paired t-test: need at least 2 pairs")
	}
	d := make([]float64, len(s))
	for i := range s {
		d[i] = s[i] - b[i]
	}
	m, v := meanVar(d)
	n := float64(len(d))
	r := Result{Test: "paired-t", N: len(s), DF: n - 1, DeltaMu: m}
	if err := finite(s, b); err != nil {
		return r, err
	}
	if v == 0 {
		switch {
		case m == 0:
			r.Statistic, r.P = 0, 1
		case m > 0:
			r.Statistic, r.P = math.Inf(1), 0
		default:
			r.Statistic = math.Inf(-1)
			r.P = 1
			if alt == TwoSided {
				r.P = 0
			}
		}
		return r, nil
	}
	r.Statistic = m / math.Sqrt(v/n)
	r.P = pFromT(r.Statistic, r.DF, alt)
	return r, nil
}

// WelchT is Welch's two-sample t-test with the Welch–Satterthwaite degrees of freedom.
func WelchT(s, b []float64, alt Alternative) (Result, error) {
	if len(s) < 2 || len(b) < 2 {
		return Result{}, errors.New("Welch t-test: need at least 2 samples on each side")
	}
	if err := finite(s, b); err != nil {
		return Result{}, err
	}
	ms, vs := meanVar(s)
	mb, vb := meanVar(b)
	ns, nb := float64(len(s)), float64(len(b))
	r := Result{Test: "welch-t", N: len(s) + len(b), DeltaMu: ms - mb}
	se2 := vs/ns + vb/nb
	if se2 == 0 {
		r.DF = ns + nb - 2
		switch {
		case ms == mb:
			r.Statistic, r.P = 0, 1
		case ms > mb:
			r.Statistic, r.P = math.Inf(1), 0
		default:
			r.Statistic, r.P = math.Inf(-1), 1
			if alt == TwoSided {
				r.P = 0
			}
		}
		return r, nil
	}
	r.Statistic = (ms - mb) / math.Sqrt(se2)
	r.DF = se2 * se2 / ((vs/ns)*(vs/ns)/(ns-1) + (vb/nb)*(vb/nb)/(nb-1))
	r.P = pFromT(r.Statistic, r.DF, alt)
	return r, nil
}

func finite(xs ...[]float64) error {
	for _, x := range xs {
		for _, v := range x {
			if math.IsNaN(v) || math.IsInf(v, 0) {
				return errors.New("t-test: samples must be finite numbers")
			}
		}
	}
	return nil
}

// HarmonicMeanP combines p-values from resamples as their harmonic mean, R / Σ 1/p_i (what
// the MOVE code reports over 40 resamples). A zero p-value makes the result zero.
func HarmonicMeanP(ps []float64) float64 {
	var s float64
	for _, p := range ps {
		if p == 0 {
			return 0
		}
		s += 1 / p
	}
	return float64(len(ps)) / s
}

// MedianP is the median of p-values.
func MedianP(ps []float64) float64 {
	c := append([]float64(nil), ps...)
	for i := 1; i < len(c); i++ { // insertion sort: R is small
		for j := i; j > 0 && c[j] < c[j-1]; j-- {
			c[j], c[j-1] = c[j-1], c[j]
		}
	}
	n := len(c)
	if n == 0 {
		return math.NaN()
	}
	if n%2 == 1 {
		return c[n/2]
	}
	return (c[n/2-1] + c[n/2]) / 2
}

// SamplesToReject is the smallest number of pairs n (at most maxN) at which a one-tailed
// paired t-test at level alpha rejects a sample whose standardized mean difference is d
// (mean of the differences over their standard deviation): t = d·√n against the t quantile
// with n−1 degrees of freedom. A sample of that size that shows the effect exactly is flagged,
// so a test of n pairs has about even odds of seeing it. It returns 0 when d ≤ 0 or n would
// exceed maxN.
func SamplesToReject(d, alpha float64, maxN int) int {
	switch {
	case math.IsInf(d, 1):
		return 2
	case !(d > 0):
		return 0
	}
	for n := 2; n <= maxN; n++ {
		if pFromT(d*math.Sqrt(float64(n)), float64(n-1), Greater) < alpha {
			return n
		}
	}
	return 0
}

// EffectSize is the standardized mean difference of a paired test's sample (its statistic
// over √n): the per-pair effect, independent of how many pairs were read.
func EffectSize(r Result) float64 {
	if r.N < 1 {
		return math.NaN()
	}
	return r.Statistic / math.Sqrt(float64(r.N))
}

// MeanUpper returns the mean of x and its one-sided upper confidence bound at level (for
// example 0.95): mean + t(level, n-1)·s/√n, Student's t over the n values as independent
// draws of one population, clipped to the largest value a share can take when every value
// lies in [0, 1]. With one value the bound is +Inf (1 for a share); with values that do not
// vary it is the mean.
func MeanUpper(x []float64, level float64) (mean, upper float64) {
	n := len(x)
	if n == 0 {
		return math.NaN(), math.NaN()
	}
	m, u := x[0], math.Inf(1)
	if n > 1 {
		var v float64
		m, v = meanVar(x)
		u = m + distuv.StudentsT{Mu: 0, Sigma: 1, Nu: float64(n - 1)}.Quantile(level)*math.Sqrt(v/float64(n))
	}
	share := true
	for _, a := range x {
		share = share && a >= 0 && a <= 1
	}
	if share {
		u = math.Min(u, 1)
	}
	return m, u
}
