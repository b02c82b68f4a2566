package stats

import (
	"math"
	"sort"

	"gonum.org/v1/gonum/stat/distuv"
)

// BinomialUpper is P(X >= k) for X ~ Binomial(n, p): the one-sided p-value of k successes in
// n trials against success probability p. Summed in log space term by term, exact to
// rounding for the n of a verification (up to thousands).
func BinomialUpper(k, n int, p float64) float64 {
	switch {
	case k <= 0:
		return 1
	case k > n:
		return 0
	case p <= 0:
		return 0
	case p >= 1:
		return 1
	}
	lp, lq := math.Log(p), math.Log1p(-p)
	lgn, _ := math.Lgamma(float64(n + 1))
	var sum float64
	for j := k; j <= n; j++ {
		a, _ := math.Lgamma(float64(j + 1))
		b, _ := math.Lgamma(float64(n - j + 1))
		sum += math.Exp(lgn - a - b + float64(j)*lp + float64(n-j)*lq)
	}
	return math.Min(1, sum)
}

// ClopperPearson is the exact (Clopper-Pearson) two-sided confidence interval at level
// 1-alpha for a binomial proportion after k successes in n trials: the alpha/2 and 1-alpha/2
// quantiles of Beta(k, n-k+1) and Beta(k+1, n-k). With k = 0 the upper bound is
// 1 - (alpha/2)^(1/n).
func ClopperPearson(k, n int, alpha float64) (lo, hi float64) {
	if n <= 0 {
		return 0, 1
	}
	if k > 0 {
		lo = distuv.Beta{Alpha: float64(k), Beta: float64(n - k + 1)}.Quantile(alpha / 2)
	}
	hi = 1
	if k < n {
		hi = distuv.Beta{Alpha: float64(k + 1), Beta: float64(n - k)}.Quantile(1 - alpha/2)
	}
	return lo, hi
}

// Uniformity is the one-sample Kolmogorov-Smirnov comparison of p-values with the uniform
// distribution on [0, 1]. D is the two-sided statistic sup|F_n(x) - x| and P its asymptotic
// p-value (with Stephens' small-sample correction); DPlus = sup(F_n(x) - x) measures an excess
// of small p-values, the failure that matters for a test of theft (too many innocents with
// small p-values), and PPlus is its exact p-value (Birnbaum and Tingey, 1951). A valid test's
// p-values on innocents are uniform or larger: PPlus large.
type Uniformity struct {
	N     int     `json:"n"`
	D     float64 `json:"ks_d"`
	P     float64 `json:"ks_p"`
	DPlus float64 `json:"ks_d_plus"`
	PPlus float64 `json:"ks_p_plus"`
}

// UniformKS compares ps with the uniform distribution.
func UniformKS(ps []float64) Uniformity {
	n := len(ps)
	u := Uniformity{N: n}
	if n == 0 {
		u.P, u.PPlus = 1, 1
		return u
	}
	x := append([]float64(nil), ps...)
	sort.Float64s(x)
	var dp, dm float64
	for i, v := range x {
		v = math.Min(1, math.Max(0, v))
		dp = math.Max(dp, float64(i+1)/float64(n)-v)
		dm = math.Max(dm, v-float64(i)/float64(n))
	}
	u.D, u.DPlus = math.Max(dp, dm), dp
	sn := math.Sqrt(float64(n))
	u.P = kolmogorovQ((sn + 0.12 + 0.11/sn) * u.D)
	u.PPlus = smirnovPlus(n, dp)
	return u
}

// kolmogorovQ is the survival function of the Kolmogorov distribution,
// Q(λ) = 2 Σ_{j≥1} (-1)^{j-1} exp(-2 j² λ²).
func kolmogorovQ(l float64) float64 {
	if l < 0.2 {
		return 1
	}
	var sum float64
	for j := 1; j <= 100; j++ {
		t := math.Exp(-2 * float64(j*j) * l * l)
		if j%2 == 1 {
			sum += t
		} else {
			sum -= t
		}
		if t < 1e-16 {
			break
		}
	}
	return math.Min(1, math.Max(0, 2*sum))
}

// smirnovPlus is P(D+_n >= d) for the one-sided statistic under uniformity:
// d Σ_{j=0}^{⌊n(1-d)⌋} C(n,j) (1-d-j/n)^(n-j) (d+j/n)^(j-1).
func smirnovPlus(n int, d float64) float64 {
	switch {
	case d <= 0:
		return 1
	case d >= 1:
		return 0
	}
	lgn, _ := math.Lgamma(float64(n + 1))
	var sum float64
	for j := 0; j <= int(math.Floor(float64(n)*(1-d))); j++ {
		a := 1 - d - float64(j)/float64(n)
		b := d + float64(j)/float64(n)
		if a <= 0 {
			continue
		}
		lj, _ := math.Lgamma(float64(j + 1))
		lnj, _ := math.Lgamma(float64(n - j + 1))
		sum += math.Exp(lgn - lj - lnj + float64(n-j)*math.Log(a) + float64(j-1)*math.Log(b))
	}
	return math.Min(1, math.Max(0, d*sum))
}
