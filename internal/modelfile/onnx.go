package modelfile

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"

	"move/internal/atomicfile"
	"move/internal/buildinfo"
	"move/internal/data"
	"move/internal/models"
	"move/internal/onnx"
)

// ONNXDefaults describe an ONNX file that carries no move metadata (one exported from
// PyTorch, say): its normalisation, class names and, when the graph's input size is
// symbolic, its image size.
type ONNXDefaults struct {
	InputSize int
	Norm      *data.Normalization
	Classes   []string
}

// Defaults is used by Load for ONNX files without move metadata; the CLI sets it from its
// --onnx-* flags.
var Defaults ONNXDefaults

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
			return nil, info, fmt.Errorf("%s carries no move metadata: give the normalisation its inputs expect with --onnx-mean and --onnx-std "+
				"(ImageNet's: --onnx-mean 0.485,0.456,0.406 --onnx-std 0.229,0.224,0.225; a graph that normalises itself: 0,0,0 and 1,1,1)", path)
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
	for _, s := range info.Norm.Std {
		if !(s > 0) {
			return nil, info, fmt.Errorf("%s: normalisation std %v must be positive", path, info.Norm.Std)
		}
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
	b, err := onnx.Export(m, info.InputSize, map[string]string{metaKey: string(ib)}, onnx.ExportOptions{Fold: fold, Producer: buildinfo.Version})
	if err != nil {
		return fmt.Errorf("exporting %s to %s: %w", m.Arch(), path, err)
	}
	return atomicfile.WriteBytes(path, overwrite, b)
}

// Export writes m as ONNX to path (see onnx.Export); fold merges batch norms into the
// convolutions before them.
func Export(path string, m models.Model, info Info, overwrite, fold bool) error {
	return saveONNX(path, m, info, overwrite, fold)
}
