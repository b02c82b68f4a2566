package nn

import "fmt"

// Node is one operation as a tracer sees it: the ONNX operator it corresponds to, its
// operands in ONNX's order (nil for an absent optional input) and its result. Fused
// operations are traced as their parts, joined by intermediate variables.
type Node struct {
	Op  string
	In  []*Var
	Out *Var
	// Ints holds integer attributes: "stride", "pad", "kernel" (pools), "perm", "begin" and
	// "end" (Pad, per axis), "start" and "step" (Slice, per axis).
	Ints map[string][]int
	// Floats holds real attributes: "alpha" (LeakyRelu), "min" and "max" (Clip).
	Floats map[string]float32
	// BN is the batch norm of a BatchNormalization node; Train says whether it used batch
	// statistics.
	BN    *BatchNorm
	Train bool
}

// Trace makes the tape call f with every operation applied through it, in order, until
// Trace(nil). While tracing, fused operations run as their parts, so that each part is seen.
// Exporters and analyses of a model's structure use it; it costs nothing when off.
func (tp *Tape) Trace(f func(Node)) { tp.tracer = f }

// tracing reports whether a tracer is set.
func (tp *Tape) tracing() bool { return tp != nil && tp.tracer != nil }

// trace reports a node to the tracer, if any. Operations call it under `if tp.tracing()`:
// building a Node allocates, and the hot paths must not pay for it when nothing traces.
func (tp *Tape) trace(n Node) {
	if tp.tracing() {
		tp.tracer(n)
	}
}

// traceFused reports an operation followed by a ReLU: op yields a fresh intermediate
// variable, which the ReLU maps to out.
func (tp *Tape) traceFused(n Node, relu bool) {
	if !tp.tracing() {
		return
	}
	if !relu {
		tp.tracer(n)
		return
	}
	out := n.Out
	mid := &Var{Value: out.Value}
	n.Out = mid
	tp.tracer(n)
	tp.tracer(Node{Op: "Relu", In: []*Var{mid}, Out: out})
}

// Folds returns, for the nodes of a traced forward pass whose result is out, the batch norms
// in inference mode that alone consume a convolution's output, keyed by that output: the ones
// an exporter merges into the convolution (w' = w·s, b' = (b − mean)·s + beta with
// s = gamma/√(var+eps)), as PyTorch's does by default. Export and the white-box features
// both use this one definition, so that they agree on what a folded model is.
func Folds(nodes []Node, out *Var) map[*Var]Node {
	uses := map[*Var]int{out: 1}
	conv := map[*Var]bool{}
	for _, n := range nodes {
		for _, v := range n.In {
			uses[v]++
		}
		if n.Op == "Conv" {
			conv[n.Out] = true
		}
	}
	folds := map[*Var]Node{}
	for _, n := range nodes {
		if n.Op == "BatchNormalization" && !n.Train && conv[n.In[0]] && uses[n.In[0]] == 1 {
			folds[n.In[0]] = n
		}
	}
	return folds
}

// Catch runs f and turns a panic of the engine (a shape an operation cannot handle) into an
// error, for callers that run a model they did not build.
func Catch(f func()) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%v", r)
		}
	}()
	f()
	return nil
}
