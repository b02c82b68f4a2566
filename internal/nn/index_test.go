package nn

import (
	"math"
	"testing"

	"move/internal/tensor"
)

// The references below index by explicit nested loops (4-D or 3-D), independent of walk.

func TestIndexGradients(t *testing.T) {
	cases := []opCase{
		{name: "transpose-nhwc-nchw", shapes: [][]int{{2, 3, 4, 5}},
			build: func(tp *Tape, in []*Var) *Var { return Transpose(tp, in[0], 0, 3, 1, 2) },
			ref: func(in [][]float64) []float64 {
				var y []float64
				for n := range 2 {
					for c := range 5 {
						for h := range 3 {
							for w := range 4 {
								y = append(y, in[0][((n*3+h)*4+w)*5+c])
							}
						}
					}
				}
				return y
			}},
		{name: "transpose-3d", shapes: [][]int{{2, 3, 4}},
			build: func(tp *Tape, in []*Var) *Var { return Transpose(tp, in[0], 2, 0, 1) },
			ref: func(in [][]float64) []float64 {
				var y []float64
				for k := range 4 {
					for i := range 2 {
						for j := range 3 {
							y = append(y, in[0][(i*3+j)*4+k])
						}
					}
				}
				return y
			}},
		{name: "pad", shapes: [][]int{{2, 3, 2, 3}},
			build: func(tp *Tape, in []*Var) *Var { return Pad(tp, in[0], []int{0, 1, 0, 2}, []int{1, 0, 2, 1}) },
			ref: func(in [][]float64) []float64 {
				var y []float64
				for n := range 3 {
					for h := range 4 {
						for w := range 4 {
							for c := range 6 {
								sh, sw, sc := h-1, w, c-2
								if n < 2 && sh >= 0 && sh < 3 && sw < 2 && sc >= 0 && sc < 3 {
									y = append(y, in[0][((n*3+sh)*2+sw)*3+sc])
								} else {
									y = append(y, 0)
								}
							}
						}
					}
				}
				return y
			}},
		{name: "slice-strided", shapes: [][]int{{2, 5, 6, 3}},
			build: func(tp *Tape, in []*Var) *Var {
				return Slice(tp, in[0], []int{0, 0, 1, 2}, []int{1, 2, 2, -1}, []int{2, 3, 3, 2})
			},
			ref: func(in [][]float64) []float64 {
				var y []float64
				for n := range 2 {
					for h := 0; h < 5; h += 2 {
						for w := 1; w < 6; w += 2 {
							for c := 2; c >= 1; c-- {
								y = append(y, in[0][((n*5+h)*6+w)*3+c])
							}
						}
					}
				}
				return y
			}},
	}
	for _, op := range []string{"Add", "Sub", "Mul", "Div"} {
		f := map[string]func(a, b float64) float64{
			"Add": func(a, b float64) float64 { return a + b },
			"Sub": func(a, b float64) float64 { return a - b },
			"Mul": func(a, b float64) float64 { return a * b },
			"Div": func(a, b float64) float64 { return a / b },
		}[op]
		cases = append(cases, opCase{name: "binary-" + op, shapes: [][]int{{2, 3, 4}, {1, 3, 1}},
			positive: []bool{false, true},
			build:    func(tp *Tape, in []*Var) *Var { return Binary(tp, op, in[0], in[1]) },
			ref: func(in [][]float64) []float64 {
				var y []float64
				for i := range 2 {
					for j := range 3 {
						for k := range 4 {
							y = append(y, f(in[0][(i*3+j)*4+k], in[1][j]))
						}
					}
				}
				return y
			}},
			opCase{name: "binary-both-" + op, shapes: [][]int{{3, 1}, {1, 4}}, positive: []bool{true, true},
				build: func(tp *Tape, in []*Var) *Var { return Binary(tp, op, in[0], in[1]) },
				ref: func(in [][]float64) []float64 {
					var y []float64
					for i := range 3 {
						for k := range 4 {
							y = append(y, f(in[0][i], in[1][k]))
						}
					}
					return y
				}})
	}
	cases = append(cases, opCase{name: "clip", shapes: [][]int{{3, 7}},
		build: func(tp *Tape, in []*Var) *Var { return Clip(tp, in[0], -0.5, 0.7) },
		ref:   elementwise(func(x float64) float64 { return math.Min(math.Max(x, -0.5), 0.7) })})
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) { checkOp(t, c) })
	}
}

func TestIndexShapeErrors(t *testing.T) {
	x := Const(tensor.New(2, 3))
	for name, f := range map[string]func(){
		"transpose-not-perm": func() { Transpose(nil, x, 0, 0) },
		"pad-negative":       func() { Pad(nil, x, []int{-1, 0}, []int{0, 0}) },
		"slice-out":          func() { Slice(nil, x, []int{0, 2}, []int{1, 1}, []int{2, 2}) },
		"binary-mismatch":    func() { Binary(nil, "Add", x, Const(tensor.New(2, 2))) },
	} {
		t.Run(name, func(t *testing.T) {
			defer func() {
				if recover() == nil {
					t.Fatal("no panic")
				}
			}()
			f()
		})
	}
}
