package features

import (
	"fmt"
	"math"

	"move/internal/kernels"
	"move/internal/models"
	"move/internal/nn"
	"move/internal/tensor"
)

// A network's hidden units can be permuted without changing what it computes: the output
// channels of a convolution, together with the matching input channels of whatever reads them.
// Two models trained from different initial weights therefore hold corresponding units in
// different places, and a white-box vector — one gradient sign per weight — means nothing
// coordinate by coordinate across them. Align finds, for every group of channels that can be
// permuted together, the permutation of a model's units that best matches a reference model's
// (the one maximising the summed correlation of their activations on the same images), and
// the resulting Alignment rewrites the model's white-box vectors in the reference's frame.

// Alignment maps the white-box vectors of one model into the frame of a reference model of
// the same structure.
type Alignment struct {
	Groups   int     `json:"groups"`           // groups of channels that were permuted
	Units    int     `json:"units"`            // units in those groups
	Moved    int     `json:"moved"`            // units whose place changed
	MeanCorr float64 `json:"mean_correlation"` // of matched units with their reference counterparts (units that vary)
	// perm[p][a] is, for part p and axis a, the model's index of each reference index (nil:
	// the identity).
	perm [][][]int
}

// spaces is the channel analysis of a traced forward pass: which activations share a
// channel ordering, and which parameter axes follow it.
type spaces struct {
	parent []int
	size   []int
	fixed  []bool
	of     map[*nn.Var]int   // activation -> space
	axes   map[*nn.Var][]int // parameter -> space of each axis (-1: none)
	sites  []int             // indices of nodes whose outputs are matched (ReLU outputs)
	siteSp []int             // the space of each site's output
}

func (s *spaces) add(size int, fixed bool) int {
	s.parent = append(s.parent, len(s.parent))
	s.size = append(s.size, size)
	s.fixed = append(s.fixed, fixed)
	return len(s.parent) - 1
}

func (s *spaces) find(i int) int {
	for s.parent[i] != i {
		s.parent[i] = s.parent[s.parent[i]]
		i = s.parent[i]
	}
	return i
}

func (s *spaces) union(a, b int) {
	a, b = s.find(a), s.find(b)
	if a != b {
		s.parent[b] = a
		s.fixed[a] = s.fixed[a] || s.fixed[b]
	}
}

// space returns v's channel space, creating a fixed one for a value of unknown origin (the
// input image, a constant).
func (s *spaces) space(v *nn.Var) int {
	if i, ok := s.of[v]; ok {
		return i
	}
	sh := v.Shape()
	i := s.add(sh[len(sh)-1], true)
	s.of[v] = i
	return i
}

func (s *spaces) fix(v *nn.Var) {
	if v != nil && len(v.Shape()) > 0 {
		s.fixed[s.find(s.space(v))] = true
	}
}

func (s *spaces) param(p *nn.Var, axes ...int) {
	if p != nil && p.RequiresGrad() {
		s.axes[p] = axes
	}
}

// analyse follows the channels through a traced forward pass of input x to output y.
// Operations it does not know pin every channel ordering they touch, so an alignment is
// never wrong, only less complete.
func analyse(nodes []nn.Node, x, y *nn.Var) *spaces {
	s := &spaces{of: map[*nn.Var]int{}, axes: map[*nn.Var][]int{}}
	s.fix(x)
	same := func(n nn.Node) { s.of[n.Out] = s.space(n.In[0]) }
	for k, n := range nodes {
		switch n.Op {
		case "Conv":
			if !n.In[1].RequiresGrad() {
				s.fix(n.In[0])
				s.of[n.Out] = s.add(n.Out.Shape()[3], true)
				continue
			}
			o := s.add(n.Out.Shape()[3], false)
			s.of[n.Out] = o
			s.param(n.In[1], o, -1, -1, s.space(n.In[0]))
			s.param(n.In[2], o)
		case "Gemm":
			if len(n.In[0].Shape()) != 2 || !n.In[1].RequiresGrad() {
				s.fix(n.In[0])
				s.of[n.Out] = s.add(n.Out.Shape()[1], true)
				continue
			}
			o := s.add(n.Out.Shape()[1], false)
			s.of[n.Out] = o
			s.param(n.In[1], o, s.space(n.In[0]))
			s.param(n.In[2], o)
		case "BatchNormalization":
			same(n)
			c := s.space(n.In[0])
			s.param(n.BN.Gamma, c)
			s.param(n.BN.Beta, c)
		case "Relu":
			same(n)
			s.sites = append(s.sites, k)
			s.siteSp = append(s.siteSp, s.of[n.Out])
		case "LeakyRelu", "Clip", "Sigmoid", "Tanh", "MaxPool", "AveragePool", "GlobalAveragePool":
			same(n)
		case "Add":
			a, b := n.In[0], n.In[1]
			if _, ok := s.of[a]; ok && b != nil && equalShapes(a.Shape(), b.Shape()) {
				if _, ok := s.of[b]; ok {
					s.union(s.space(a), s.space(b))
					same(n)
					continue
				}
			}
			s.pin(n)
		case "Reshape":
			in, out := n.In[0].Shape(), n.Out.Shape()
			if len(out) == 2 && in[0] == out[0] && in[len(in)-1] == out[1] {
				same(n) // [N][1][1][C] or [N][C] to [N][C]
				continue
			}
			s.pin(n)
		default:
			s.pin(n)
		}
	}
	s.fix(y)
	return s
}

// pin fixes the channel orderings of every activation an operation touches and gives its
// output a fixed one.
func (s *spaces) pin(n nn.Node) {
	for _, v := range n.In {
		if v == nil {
			continue
		}
		if _, ok := s.of[v]; ok {
			s.fix(v)
		} else if v.RequiresGrad() {
			delete(s.axes, v)
			s.axes[v] = nil // a weight used in a way this analysis does not follow: never permuted
		}
	}
	if sh := n.Out.Shape(); len(sh) > 0 {
		s.of[n.Out] = s.add(sh[len(sh)-1], true)
	}
}

func equalShapes(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// trace runs m on x (inference mode) and returns its nodes, its input and its output.
func trace(m models.Model, x *tensor.Tensor) ([]nn.Node, *nn.Var, *nn.Var, error) {
	var nodes []nn.Node
	tp := nn.NewTape(false)
	tp.Trace(func(n nn.Node) { nodes = append(nodes, n) })
	in := nn.Const(x)
	var y *nn.Var
	if err := nn.Catch(func() { y = m.Forward(tp, in, false) }); err != nil {
		return nil, nil, nil, err
	}
	return nodes, in, y, nil
}

// AlignBatch is how many images Align runs at once.
const AlignBatch = 32

// Align finds the permutation of m's hidden units that best matches ref's on the same images,
// xr as ref expects them and xm as m does (NHWC, normalised; the owner's clean images), and
// returns the alignment of m's white-box vectors into ref's frame. The models must have the
// same white-box structure.
func Align(ref, m models.Model, xr, xm *tensor.Tensor) (*Alignment, error) {
	x := xr
	n, h := x.Shape[0], x.Shape[1]
	if xm.Shape[0] != n {
		return nil, fmt.Errorf("%d images for the reference and %d for the model", n, xm.Shape[0])
	}
	if n < 2 {
		return nil, fmt.Errorf("aligning needs at least 2 images, got %d", n)
	}
	sr, err := Describe(ref, h)
	if err != nil {
		return nil, err
	}
	sm, err := Describe(m, h)
	if err != nil {
		return nil, err
	}
	if sr.Signature != sm.Signature {
		return nil, fmt.Errorf("the models' weights do not line up (different white-box structures)")
	}
	per, perM := x.Len()/n, xm.Len()/n
	var s *spaces
	var acc []*corrAcc // per site
	for lo := 0; lo < n; lo += AlignBatch {
		hi := min(n, lo+AlignBatch)
		xb := tensor.From(x.Data[lo*per:hi*per], append([]int{hi - lo}, x.Shape[1:]...)...)
		xmb := tensor.From(xm.Data[lo*perM:hi*perM], append([]int{hi - lo}, xm.Shape[1:]...)...)
		rn, rin, ry, err := trace(ref, xb)
		if err != nil {
			return nil, fmt.Errorf("running the reference model: %w", err)
		}
		mn, _, _, err := trace(m, xmb)
		if err != nil {
			return nil, fmt.Errorf("running the model: %w", err)
		}
		if len(rn) != len(mn) {
			return nil, fmt.Errorf("the models run different graphs (%d and %d operations)", len(rn), len(mn))
		}
		if s == nil {
			s = analyse(rn, rin, ry)
			for _, k := range s.sites {
				acc = append(acc, newCorrAcc(rn[k].Out.Shape()[len(rn[k].Out.Shape())-1]))
			}
		}
		for i, k := range s.sites {
			if rn[k].Op != mn[k].Op || !equalShapes(rn[k].Out.Shape(), mn[k].Out.Shape()) {
				return nil, fmt.Errorf("the models run different graphs (operation %d: %s and %s)", k, rn[k].Op, mn[k].Op)
			}
			acc[i].add(rn[k].Out.Value, mn[k].Out.Value)
		}
	}
	// Summed correlation per group of channels that are not pinned.
	corr := map[int][]float64{}
	for i := range s.sites {
		g := s.find(s.siteSp[i])
		if s.fixed[g] {
			continue
		}
		c := acc[i].corr()
		if t, ok := corr[g]; ok {
			for j := range t {
				t[j] += c[j]
			}
		} else {
			corr[g] = c
		}
	}
	a := &Alignment{}
	perms := map[int][]int{}
	var total float64
	live := 0
	for g, c := range corr {
		size := s.size[g]
		cost := make([]float64, len(c))
		for j, v := range c {
			cost[j] = -v
		}
		p := assign(cost, size)
		perms[g] = p
		nSites := 0
		for i := range s.sites {
			if s.find(s.siteSp[i]) == g {
				nSites++
			}
		}
		for r, u := range p {
			if v := c[r*size+u]; v != 0 {
				total += v / float64(nSites)
				live++
			}
			if r != u {
				a.Moved++
			}
		}
		a.Groups++
		a.Units += size
	}
	if live > 0 {
		a.MeanCorr = total / float64(live)
	}
	// Per part, the permutation of each axis.
	for _, p := range sr.Parts {
		axes := s.axes[p.Param]
		pp := make([][]int, len(p.Param.Shape()))
		for ax, sp := range axes {
			if sp < 0 || ax >= len(pp) {
				continue
			}
			pp[ax] = perms[s.find(sp)] // nil when the group is pinned
		}
		a.perm = append(a.perm, pp)
	}
	return a, nil
}

// Apply rewrites white-box vectors of the aligned model (in the given layout, for the
// structure st of the reference) in the reference's frame, in place.
func (a *Alignment) Apply(st *Structure, layout string, vs [][]float32) error {
	if len(a.perm) != len(st.Parts) {
		return fmt.Errorf("alignment of %d parts for a structure of %d", len(a.perm), len(st.Parts))
	}
	var idx []int // aligned coordinate j reads the model's coordinate idx[j]
	for k, p := range st.Parts {
		sh := p.Param.Shape()
		pp := a.perm[k]
		var dims []int
		var perms [][]int
		switch {
		case layout == Full:
			dims, perms = sh, pp
		case len(sh) == 4:
			dims, perms = []int{sh[0], sh[3]}, [][]int{pp[0], pp[3]}
		case len(sh) >= 2:
			dims, perms = sh, pp
		default:
			continue
		}
		base := len(idx)
		idx = appendPermuted(idx, base, dims, perms)
	}
	for i, v := range vs {
		if len(v) != len(idx) {
			return fmt.Errorf("vector %d has %d coordinates, the structure %d", i, len(v), len(idx))
		}
		w := make([]float32, len(v))
		for j, src := range idx {
			w[j] = v[src]
		}
		copy(v, w)
	}
	return nil
}

// appendPermuted appends, for a row-major tensor of the given dims starting at offset base,
// the source offset of every destination element when axis a is permuted by perms[a].
func appendPermuted(idx []int, base int, dims []int, perms [][]int) []int {
	n := 1
	for _, d := range dims {
		n *= d
	}
	coord := make([]int, len(dims))
	for range n {
		src := 0
		for a, c := range coord {
			if perms[a] != nil {
				c = perms[a][c]
			}
			src = src*dims[a] + c
		}
		idx = append(idx, base+src)
		for a := len(coord) - 1; a >= 0; a-- {
			coord[a]++
			if coord[a] < dims[a] {
				break
			}
			coord[a] = 0
		}
	}
	return idx
}

// corrAcc accumulates the moments that give the correlation of every reference channel with
// every model channel over all positions of all images.
type corrAcc struct {
	c        int
	n        float64
	sa, sb   []float64
	qa, qb   []float64
	cross    []float32 // c x c, Σ a_i·b_j over the current batch
	crossAll []float64
}

func newCorrAcc(c int) *corrAcc {
	return &corrAcc{c: c, sa: make([]float64, c), sb: make([]float64, c), qa: make([]float64, c), qb: make([]float64, c),
		cross: make([]float32, c*c), crossAll: make([]float64, c*c)}
}

func (k *corrAcc) add(a, b *tensor.Tensor) {
	c := k.c
	rows := a.Len() / c
	for r := range rows {
		ra, rb := a.Data[r*c:(r+1)*c], b.Data[r*c:(r+1)*c]
		for j := range c {
			x, y := float64(ra[j]), float64(rb[j])
			k.sa[j] += x
			k.sb[j] += y
			k.qa[j] += x * x
			k.qb[j] += y * y
		}
	}
	// Σ_r a[r][i]·b[r][j] = (aᵀb)[i][j], in float32 per batch, summed in float64.
	kernels.Gemm(true, false, c, c, rows, 1, a.Data, c, b.Data, c, 0, k.cross, c)
	for j, v := range k.cross {
		k.crossAll[j] += float64(v)
	}
	k.n += float64(rows)
}

// corr returns the c x c correlation matrix (reference channel i, model channel j); a channel
// that never varies correlates 0 with everything.
func (k *corrAcc) corr() []float64 {
	c := k.c
	out := make([]float64, c*c)
	sd := func(s, q float64) float64 {
		v := q/k.n - (s/k.n)*(s/k.n)
		if v <= 1e-12 {
			return 0
		}
		return math.Sqrt(v)
	}
	for i := range c {
		di := sd(k.sa[i], k.qa[i])
		for j := range c {
			dj := sd(k.sb[j], k.qb[j])
			if di == 0 || dj == 0 {
				continue
			}
			cov := k.crossAll[i*c+j]/k.n - (k.sa[i]/k.n)*(k.sb[j]/k.n)
			out[i*c+j] = cov / (di * dj)
		}
	}
	return out
}
