package nn

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
