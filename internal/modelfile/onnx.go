package modelfile

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"strconv"
	"strings"

	"move/internal/atomicfile"
	"move/internal/buildinfo"
	"move/internal/data"
	"move/internal/models"
	"move/internal/nn"
	"move/internal/onnx"
	"move/internal/tensor"
)

// ONNXDefaults describe an ONNX file that carries no move metadata (one exported from
// PyTorch, say): its normalisation, class names and, when the graph's input size is
// symbolic, its image size.
type ONNXDefaults struct {
	InputSize int
	Norm      *data.Normalization
	Classes   []string
}

// ErrNoNormalization is returned for an ONNX file without move metadata when the caller did
// not say how its inputs are normalised.
var ErrNoNormalization = errors.New("the normalisation its inputs expect is not known")

// IsONNX reports whether path names an ONNX file.
func IsONNX(path string) bool { return strings.HasSuffix(strings.ToLower(path), ".onnx") }

// loadONNX imports an ONNX file and describes it.
func loadONNX(path string, d ONNXDefaults) (models.Model, Info, error) {
	m, err := onnx.ReadFile(path, onnx.Options{InputSize: d.InputSize})
	if err != nil {
		return nil, Info{}, fmt.Errorf("reading model: %w", err)
	}
	var info Info
	if raw, ok := m.Metadata()[metaKey]; ok {
		if err := json.Unmarshal([]byte(raw), &info); err != nil {
			return nil, info, fmt.Errorf("%s: bad move metadata: %w", path, err)
		}
	} else {
		if d.Norm == nil {
			return nil, info, fmt.Errorf("%s carries no move metadata: %w", path, ErrNoNormalization)
		}
		info = Info{Norm: *d.Norm, InputSize: m.InputSize(), Classes: d.Classes, Made: "import", Data: path}
		if info.Classes == nil {
			for k := range m.Classes() {
				info.Classes = append(info.Classes, strconv.Itoa(k))
			}
		}
	}
	if len(info.Classes) != m.Classes() {
		return nil, info, fmt.Errorf("%s: the graph answers %d classes but %d class names are given", path, m.Classes(), len(info.Classes))
	}
	if info.InputSize != m.InputSize() {
		info.InputSize = m.InputSize()
	}
	if err := checkInfo(info, path); err != nil {
		return nil, info, err
	}
	if err := CheckFinite(m, path); err != nil {
		return nil, info, err
	}
	info.Arch, info.Layout = m.Arch(), "onnx"
	return m, info, nil
}

// saveONNX exports m to path atomically, with info as move metadata.
func saveONNX(path string, m models.Model, info Info, overwrite, fold bool) error {
	info.Arch, info.Layout = m.Arch(), "onnx"
	if len(info.Classes) != m.Classes() {
		return fmt.Errorf("saving %s: model has %d outputs but %d class names", path, m.Classes(), len(info.Classes))
	}
	if info.InputSize <= 0 {
		return fmt.Errorf("saving %s: the model's input size is unknown", path)
	}
	ib, err := json.Marshal(info)
	if err != nil {
		return err
	}
	b, err := onnx.Export(m, info.InputSize, map[string]string{metaKey: string(ib)}, onnx.ExportOptions{FoldBatchNorms: fold, Producer: buildinfo.Version})
	if err != nil {
		return fmt.Errorf("exporting %s to %s: %w", m.Arch(), path, err)
	}
	return atomicfile.WriteBytes(path, overwrite, b)
}

// Exported is what Export wrote: the weights of the re-imported graph and how far its logits
// are from the model's (relative to the largest).
type Exported struct {
	Params  int
	MaxDiff float64
}

// Export writes m as ONNX to path (see onnx.Export); fold merges batch norms into the
// convolutions before them. The export is checked before it is written: re-imported, it
// must give the model's logits on four random images (within 1e-3 of the largest).
func Export(path string, m models.Model, info Info, overwrite, fold bool) (Exported, error) {
	var e Exported
	b, err := onnx.Export(m, info.InputSize, nil, onnx.ExportOptions{FoldBatchNorms: fold})
	if err != nil {
		return e, fmt.Errorf("exporting %s: %w", m.Arch(), err)
	}
	back, err := onnx.Import(b, "", onnx.Options{})
	if err != nil {
		return e, fmt.Errorf("the export of %s does not read back: %w", m.Arch(), err)
	}
	e.Params, e.MaxDiff = back.Store().NumParams(), maxLogitDiff(m, back, info.InputSize)
	if e.MaxDiff > 1e-3 {
		return e, fmt.Errorf("the export of %s gives other logits (off by %.3g of the largest)", m.Arch(), e.MaxDiff)
	}
	return e, saveONNX(path, m, info, overwrite, fold)
}

// maxLogitDiff runs a and b on four random images and returns the largest logit
// difference relative to the largest logit.
func maxLogitDiff(a, b models.Model, size int) float64 {
	r := rand.New(rand.NewPCG(1, 1))
	x := tensor.New(4, size, size, 3)
	for i := range x.Data {
		x.Data[i] = float32(r.NormFloat64())
	}
	ya := a.Forward(nil, nn.Const(x), false).Value.Data
	yb := b.Forward(nil, nn.Const(x), false).Value.Data
	big, worst := 0.0, 0.0
	for i := range ya {
		big = math.Max(big, math.Abs(float64(ya[i])))
		worst = math.Max(worst, math.Abs(float64(ya[i]-yb[i])))
	}
	return worst / (big + 1e-12)
}
