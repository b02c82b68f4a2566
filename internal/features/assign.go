package features

import "math"

// assign solves the linear assignment problem for the n x n row-major cost matrix: it returns
// p with p[row] = column, a permutation minimising Σ cost[row][p[row]]. It is the Hungarian
// method with row and column potentials (shortest augmenting paths), O(n³).
func assign(cost []float64, n int) []int {
	inf := math.Inf(1)
	u := make([]float64, n+1) // row potentials (1-based; 0 is a sentinel)
	v := make([]float64, n+1) // column potentials
	match := make([]int, n+1) // match[col] = row
	way := make([]int, n+1)
	minv := make([]float64, n+1)
	used := make([]bool, n+1)
	for i := 1; i <= n; i++ {
		match[0] = i
		j0 := 0
		for j := range minv {
			minv[j], used[j] = inf, false
		}
		for {
			used[j0] = true
			i0, delta, j1 := match[j0], inf, 0
			for j := 1; j <= n; j++ {
				if used[j] {
					continue
				}
				cur := cost[(i0-1)*n+j-1] - u[i0] - v[j]
				if cur < minv[j] {
					minv[j], way[j] = cur, j0
				}
				if minv[j] < delta {
					delta, j1 = minv[j], j
				}
			}
			for j := 0; j <= n; j++ {
				if used[j] {
					u[match[j]] += delta
					v[j] -= delta
				} else {
					minv[j] -= delta
				}
			}
			j0 = j1
			if match[j0] == 0 {
				break
			}
		}
		for j0 != 0 {
			j1 := way[j0]
			match[j0] = match[j1]
			j0 = j1
		}
	}
	p := make([]int, n)
	for j := 1; j <= n; j++ {
		p[match[j]-1] = j - 1
	}
	return p
}
