package nn

import (
	"fmt"
	"math"
)

// SNNL is the soft nearest-neighbour loss (Frosst, Papernot and Hinton, ICML 2019) of the
// rows of h [N][D] that include marks, with labels and temperature temp:
//
//	-1/n sum_i log( sum_{j != i, y_j = y_i} e_ij / sum_{j != i} e_ij ),  e_ij = exp(-|h_i - h_j|^2 / temp)
//
// over the n included rows. It is small when each row's nearest neighbours share its label and
// large when the labels are entangled; entangled watermarks maximise it between watermarked
// and clean samples. Rows whose label no other included row shares contribute nothing (their
// ratio has no neighbour of their class), nor do the excluded rows. The value is 0 when fewer
// than two rows are included.
func SNNL(tp *Tape, h *Var, labels []int, include []bool, temp float64) *Var {
	sh := h.Shape()
	if len(sh) != 2 || len(labels) != sh[0] || len(include) != sh[0] {
		panic(fmt.Sprintf("nn.SNNL: %d labels and %d marks for rows of %v", len(labels), len(include), sh))
	}
	if !(temp > 0) {
		panic(fmt.Sprintf("nn.SNNL: temperature %g", temp))
	}
	d := sh[1]
	x := h.Data()
	var rows []int
	for i, in := range include {
		if in {
			rows = append(rows, i)
		}
	}
	m := len(rows)
	// e[a][b] over included rows, and each row's two sums.
	e := make([]float64, m*m)
	dist := make([]float64, m*m)
	for a, i := range rows {
		for b := a + 1; b < m; b++ {
			j := rows[b]
			var s float64
			for k := range d {
				v := float64(x[i*d+k]) - float64(x[j*d+k])
				s += v * v
			}
			dist[a*m+b], dist[b*m+a] = s, s
		}
	}
	// Subtracting each row's smallest distance keeps exp from underflowing; it cancels in
	// the ratio.
	num := make([]float64, m)
	den := make([]float64, m)
	counted := make([]bool, m)
	var loss float64
	terms := 0
	for a, i := range rows {
		lo := math.Inf(1)
		for b := range m {
			if b != a {
				lo = min(lo, dist[a*m+b])
			}
		}
		for b, j := range rows {
			if b == a {
				continue
			}
			v := math.Exp(-(dist[a*m+b] - lo) / temp)
			e[a*m+b] = v
			den[a] += v
			if labels[j] == labels[i] {
				num[a] += v
			}
		}
		if num[a] > 0 && den[a] > 0 {
			counted[a] = true
			loss -= math.Log(num[a] / den[a])
			terms++
		}
	}
	if m < 2 || terms == 0 {
		return scalarLoss(tp, 0, h, func([]float32, float32) {})
	}
	nf := float64(m)
	return scalarLoss(tp, loss/nf, h, func(dx []float32, g float32) {
		// dL/d dist_ab = (q_ab - p_ab) / (n temp), q over same-label neighbours, p over all;
		// d dist_ab / d h_i = 2 (h_i - h_j), and dist is symmetric.
		coef := make([]float64, m*m)
		for a, i := range rows {
			if !counted[a] {
				continue
			}
			for b, j := range rows {
				if b == a {
					continue
				}
				p := e[a*m+b] / den[a]
				var q float64
				if labels[j] == labels[i] {
					q = e[a*m+b] / num[a]
				}
				c := (q - p) / (nf * temp)
				coef[a*m+b] += c
				coef[b*m+a] += c
			}
		}
		gg := float64(g)
		for a, i := range rows {
			for b, j := range rows {
				c := coef[a*m+b]
				if b == a || c == 0 {
					continue
				}
				for k := range d {
					dx[i*d+k] += float32(gg * 2 * c * (float64(x[i*d+k]) - float64(x[j*d+k])))
				}
			}
		}
	})
}
