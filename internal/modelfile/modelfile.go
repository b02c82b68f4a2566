package modelfile

import (
	"encoding/json"
	"fmt"
	"math"
	"strconv"

	"move/internal/data"
	"move/internal/models"
	"move/internal/onnx"
	"move/internal/tensor"
)

// Info is the metadata of a model file (stored as JSON under the "move" metadata key).
type Info struct {
	Arch      string             `json:"arch"`
	Classes   []string           `json:"classes"`
	InputSize int                `json:"input_size"`
	Norm      data.Normalization `json:"normalization"`
	Layout    string             `json:"layout"` // "pytorch": conv weights stored OIHW
	Version   string             `json:"move_version"`
	Command   string             `json:"command,omitempty"`
	Seed      uint64             `json:"seed"`
	Parent    string             `json:"parent,omitempty"` // SHA-256 of the model it came from
	Made      string             `json:"made,omitempty"`   // "train", "copy", "distill", ...
	Data      string             `json:"data,omitempty"`   // training data it saw
	Extra     map[string]any     `json:"extra,omitempty"`
}

const metaKey = "move"

// MatchClasses reports an error unless the model's class names are names, in order. A model
// imported without names (numbered 0..K-1) matches any names of the same count.
func (i Info) MatchClasses(names []string, data string) error {
	if len(i.Classes) != len(names) {
		return fmt.Errorf("the model has %d classes, %s has %d", len(i.Classes), data, len(names))
	}
	numbered := true
	for k, c := range i.Classes {
		if c != strconv.Itoa(k) {
			numbered = false
		}
	}
	if numbered {
		return nil
	}
	for k := range names {
		if i.Classes[k] != names[k] {
			return fmt.Errorf("the model's class %d is %q, %s's is %q: the model was trained on other classes (or in another order)", k, i.Classes[k], data, names[k])
		}
	}
	return nil
}

// ohwiToOIHW converts our convolution weights to PyTorch's layout: the same permutation as
// NHWC to NCHW.
func ohwiToOIHW(t *tensor.Tensor) *tensor.Tensor { return tensor.ToNCHW(t) }

func oihwToOHWI(t *tensor.Tensor) *tensor.Tensor { return tensor.ToNHWC(t) }

// Encode returns the tensors and metadata of a model file for m (weights converted to
// PyTorch's layout).
func Encode(m models.Model, info Info) (map[string]*tensor.Tensor, map[string]string, error) {
	info.Arch = m.Arch()
	info.Layout = "pytorch"
	if len(info.Classes) != m.Classes() {
		return nil, nil, fmt.Errorf("model has %d outputs but %d class names", m.Classes(), len(info.Classes))
	}
	ts := map[string]*tensor.Tensor{}
	for name, t := range m.Store().Map() {
		if len(t.Shape) == 4 {
			t = ohwiToOIHW(t)
		}
		ts[name] = t
	}
	ib, err := json.Marshal(info)
	if err != nil {
		return nil, nil, err
	}
	return ts, map[string]string{metaKey: string(ib), "format": "pt"}, nil
}

// Save writes m to path atomically (refusing to replace an existing file unless overwrite):
// as ONNX when path ends in .onnx, as a safetensors model file otherwise. An imported ONNX
// graph can only be saved as ONNX.
func Save(path string, m models.Model, info Info, overwrite bool) error {
	if IsONNX(path) {
		return saveONNX(path, m, info, overwrite, false)
	}
	if m.Arch() == onnx.Arch {
		return fmt.Errorf("saving %s: the model is an imported ONNX graph; save it as .onnx", path)
	}
	ts, meta, err := Encode(m, info)
	if err != nil {
		return fmt.Errorf("saving %s: %w", path, err)
	}
	return SaveTensors(path, ts, meta, overwrite)
}

// Decode builds the model described by tensors and metadata read from a file called name.
func Decode(ts map[string]*tensor.Tensor, meta map[string]string, name string) (models.Model, Info, error) {
	var info Info
	raw, ok := meta[metaKey]
	if !ok {
		return nil, info, fmt.Errorf("%s: no move metadata (architecture, classes); is it a move model file?", name)
	}
	if err := json.Unmarshal([]byte(raw), &info); err != nil {
		return nil, info, fmt.Errorf("%s: bad move metadata: %w", name, err)
	}
	if info.Layout != "pytorch" {
		return nil, info, fmt.Errorf("%s: unknown weight layout %q", name, info.Layout)
	}
	m, err := models.New(info.Arch, len(info.Classes), 0)
	if err != nil {
		return nil, info, fmt.Errorf("%s: %w", name, err)
	}
	conv := map[string]*tensor.Tensor{}
	for n, t := range ts {
		if len(t.Shape) == 4 {
			t = oihwToOHWI(t)
		}
		conv[n] = t
	}
	if err := m.Store().Load(conv); err != nil {
		return nil, info, fmt.Errorf("%s: weights do not fit %s: %w", name, info.Arch, err)
	}
	if err := checkInfo(info, name); err != nil {
		return nil, info, err
	}
	if err := CheckFinite(m, name); err != nil {
		return nil, info, err
	}
	return m, info, nil
}

// MaxInputSize bounds the image size a model file may declare (images are resized to it).
const MaxInputSize = 1024

// checkInfo checks the metadata a model file declares before anything is sized by it.
func checkInfo(info Info, name string) error {
	for _, s := range info.Norm.Std {
		if !(s > 0) || math.IsInf(float64(s), 0) {
			return fmt.Errorf("%s: normalisation std %v must be positive", name, info.Norm.Std)
		}
	}
	for _, m := range info.Norm.Mean {
		if math.IsNaN(float64(m)) || math.IsInf(float64(m), 0) {
			return fmt.Errorf("%s: normalisation mean %v must be finite", name, info.Norm.Mean)
		}
	}
	if info.InputSize < 0 || info.InputSize > MaxInputSize {
		return fmt.Errorf("%s: input size %d is outside [0, %d]", name, info.InputSize, MaxInputSize)
	}
	return nil
}

// CheckFinite refuses a model with a NaN or infinite weight: its answers would mean nothing.
func CheckFinite(m models.Model, name string) error {
	for n, t := range m.Store().Map() {
		bad := 0
		for _, v := range t.Data {
			if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
				bad++
			}
		}
		if bad > 0 {
			return fmt.Errorf("%s: weight %s has %d NaN or infinite values of %d: the model is broken", name, n, bad, len(t.Data))
		}
	}
	return nil
}

// Load reads a model file: a safetensors model file, or an ONNX file; onnx describes an
// ONNX file that carries no move metadata (unused otherwise).
func Load(path string, onnx ONNXDefaults) (models.Model, Info, error) {
	if IsONNX(path) {
		return loadONNX(path, onnx)
	}
	ts, meta, err := LoadTensors(path)
	if err != nil {
		return nil, Info{}, fmt.Errorf("reading model: %w", err)
	}
	return Decode(ts, meta, path)
}
