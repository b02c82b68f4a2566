package onnx

import (
	"encoding/binary"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"move/internal/onnx/onnxpb"
	"move/internal/tensor"
)

// maxElements bounds every tensor this package builds (1 GiB of float32): a file cannot make
// the loader allocate more than that per tensor, whatever it declares.
const maxElements = 1 << 28

// maxBuilt bounds the tensors a graph computes from small operands (a constant of a declared
// shape, a broadcast, a gather, a padding): a small file cannot make a huge allocation.
const maxBuilt = 1 << 24

// maxActivation bounds each activation of the import's dry run (one image).
const maxActivation = 1 << 26

// ctensor is a tensor known without the input: an initializer, a Constant, or a shape
// computation. Exactly one of f (floating types) and i (integer and boolean types) is set.
type ctensor struct {
	shape []int
	f     []float64
	i     []int64
}

func (c *ctensor) isInt() bool { return c.f == nil }

func (c *ctensor) len() int {
	if c.f != nil {
		return len(c.f)
	}
	return len(c.i)
}

// ints returns the values as ints (floats truncated).
func (c *ctensor) ints() []int {
	out := make([]int, c.len())
	for k := range out {
		if c.f != nil {
			out[k] = int(c.f[k])
		} else {
			out[k] = clampInt(c.i[k])
		}
	}
	return out
}

// floats returns the values as float64.
func (c *ctensor) floats() []float64 {
	if c.f != nil {
		return c.f
	}
	out := make([]float64, len(c.i))
	for k, v := range c.i {
		out[k] = float64(v)
	}
	return out
}

// float32 returns the values as a float32 tensor of the same shape.
func (c *ctensor) float32() *tensor.Tensor {
	t := tensor.New(c.shape...)
	for k, v := range c.floats() {
		t.Data[k] = float32(v)
	}
	return t
}

// clampInt converts an int64 to int, saturating (ONNX uses ±2⁶³-1 for "to the end").
func clampInt(v int64) int {
	const lim = 1 << 40
	return int(max(min(v, lim), -lim))
}

// checkShape validates declared dimensions and returns the element count.
func checkShape(dims []int64, what string) ([]int, int, error) {
	shape := make([]int, len(dims))
	n := 1
	for k, d := range dims {
		if d < 0 || d > maxElements {
			return nil, 0, fmt.Errorf("%s: dimension %d is %d", what, k, d)
		}
		shape[k] = int(d)
		n *= int(d)
		if n > maxElements {
			return nil, 0, fmt.Errorf("%s: shape %v has more than %d elements", what, dims, maxElements)
		}
	}
	return shape, n, nil
}

// Data types of TensorProto (onnx.proto's TensorProto.DataType).
const (
	dtFloat   = 1
	dtUint8   = 2
	dtInt8    = 3
	dtInt32   = 6
	dtInt64   = 7
	dtBool    = 9
	dtFloat16 = 10
	dtDouble  = 11
)

// externalReader reads the bytes of an external-data tensor.
type externalReader func(location string, offset, length int64) ([]byte, error)

// dirReader reads external data from files in dir, refusing paths that leave it.
func dirReader(dir string) externalReader {
	return func(location string, offset, length int64) ([]byte, error) {
		if dir == "" {
			return nil, fmt.Errorf("external data %q: the model was not read from a file", location)
		}
		clean := filepath.Clean(location)
		if filepath.IsAbs(clean) || clean == ".." || strings.HasPrefix(clean, ".."+string(filepath.Separator)) {
			return nil, fmt.Errorf("external data location %q leaves the model's folder", location)
		}
		path := filepath.Join(dir, clean)
		f, err := os.Open(path)
		if err != nil {
			return nil, fmt.Errorf("external data: %w", err)
		}
		defer f.Close()
		st, err := f.Stat()
		if err != nil {
			return nil, fmt.Errorf("external data: %w", err)
		}
		if length < 0 {
			length = st.Size() - offset
		}
		if offset < 0 || length < 0 || offset > st.Size() || length > st.Size()-offset {
			return nil, fmt.Errorf("external data %s: bytes [%d, +%d) lie outside its %d bytes", path, offset, length, st.Size())
		}
		b := make([]byte, length)
		if _, err := f.ReadAt(b, offset); err != nil {
			return nil, fmt.Errorf("external data %s: %w", path, err)
		}
		return b, nil
	}
}

// decodeTensor reads a TensorProto; ext reads external data.
func decodeTensor(t *onnxpb.TensorProto, ext externalReader) (*ctensor, error) {
	what := fmt.Sprintf("tensor %q", t.GetName())
	shape, n, err := checkShape(t.GetDims(), what)
	if err != nil {
		return nil, err
	}
	if t.GetSegment() != nil {
		return nil, fmt.Errorf("%s: segmented tensors are not supported", what)
	}
	raw := t.GetRawData()
	if t.GetDataLocation() == onnxpb.TensorProto_EXTERNAL {
		loc, off, length := "", int64(0), int64(-1)
		for _, e := range t.GetExternalData() {
			switch e.GetKey() {
			case "location":
				loc = e.GetValue()
			case "offset", "length":
				v, err := strconv.ParseInt(e.GetValue(), 10, 64)
				if err != nil || v < 0 {
					return nil, fmt.Errorf("%s: external data %s %q is not a byte count", what, e.GetKey(), e.GetValue())
				}
				if e.GetKey() == "offset" {
					off = v
				} else {
					length = v
				}
			}
		}
		if loc == "" {
			return nil, fmt.Errorf("%s: external data without a location", what)
		}
		if ext == nil {
			return nil, fmt.Errorf("%s: external data %q cannot be read here", what, loc)
		}
		size := int64(n) * int64(elemSize(t.GetDataType()))
		if length < 0 {
			length = size
		}
		if length != size {
			return nil, fmt.Errorf("%s: external data holds %d bytes, shape %v needs %d", what, length, shape, size)
		}
		if raw, err = ext(loc, off, length); err != nil {
			return nil, fmt.Errorf("%s: %w", what, err)
		}
	}
	c := &ctensor{shape: shape}
	dt := t.GetDataType()
	if raw != nil {
		es := elemSize(dt)
		if es == 0 {
			return nil, fmt.Errorf("%s: data type %d is not supported", what, dt)
		}
		if len(raw) != n*es {
			return nil, fmt.Errorf("%s: %d bytes of data for shape %v (%d bytes expected)", what, len(raw), shape, n*es)
		}
		switch dt {
		case dtFloat:
			c.f = make([]float64, n)
			for k := range n {
				c.f[k] = float64(math.Float32frombits(binary.LittleEndian.Uint32(raw[4*k:])))
			}
		case dtDouble:
			c.f = make([]float64, n)
			for k := range n {
				c.f[k] = math.Float64frombits(binary.LittleEndian.Uint64(raw[8*k:]))
			}
		case dtFloat16:
			c.f = make([]float64, n)
			for k := range n {
				c.f[k] = halfToFloat(binary.LittleEndian.Uint16(raw[2*k:]))
			}
		case dtInt64:
			c.i = make([]int64, n)
			for k := range n {
				c.i[k] = int64(binary.LittleEndian.Uint64(raw[8*k:]))
			}
		case dtInt32:
			c.i = make([]int64, n)
			for k := range n {
				c.i[k] = int64(int32(binary.LittleEndian.Uint32(raw[4*k:])))
			}
		case dtInt8:
			c.i = make([]int64, n)
			for k := range n {
				c.i[k] = int64(int8(raw[k]))
			}
		case dtUint8, dtBool:
			c.i = make([]int64, n)
			for k := range n {
				c.i[k] = int64(raw[k])
			}
		}
		return c, nil
	}
	count := func(have int) error {
		if have != n {
			return fmt.Errorf("%s: %d values for shape %v", what, have, shape)
		}
		return nil
	}
	switch dt {
	case dtFloat:
		if err := count(len(t.GetFloatData())); err != nil {
			return nil, err
		}
		c.f = make([]float64, n)
		for k, v := range t.GetFloatData() {
			c.f[k] = float64(v)
		}
	case dtDouble:
		if err := count(len(t.GetDoubleData())); err != nil {
			return nil, err
		}
		c.f = append([]float64(nil), t.GetDoubleData()...)
	case dtFloat16:
		if err := count(len(t.GetInt32Data())); err != nil {
			return nil, err
		}
		c.f = make([]float64, n)
		for k, v := range t.GetInt32Data() {
			c.f[k] = halfToFloat(uint16(v))
		}
	case dtInt64:
		if err := count(len(t.GetInt64Data())); err != nil {
			return nil, err
		}
		c.i = append([]int64(nil), t.GetInt64Data()...)
	case dtInt32, dtInt8, dtUint8, dtBool:
		if err := count(len(t.GetInt32Data())); err != nil {
			return nil, err
		}
		c.i = make([]int64, n)
		for k, v := range t.GetInt32Data() {
			c.i[k] = int64(v)
		}
	default:
		return nil, fmt.Errorf("%s: data type %d is not supported", what, dt)
	}
	if c.f == nil && c.i == nil { // an empty tensor
		if dt == dtFloat || dt == dtDouble || dt == dtFloat16 {
			c.f = []float64{}
		} else {
			c.i = []int64{}
		}
	}
	return c, nil
}

func elemSize(dt int32) int {
	switch dt {
	case dtFloat, dtInt32:
		return 4
	case dtDouble, dtInt64:
		return 8
	case dtFloat16:
		return 2
	case dtInt8, dtUint8, dtBool:
		return 1
	}
	return 0
}

// halfToFloat converts an IEEE 754 half-precision value.
func halfToFloat(h uint16) float64 {
	sign := 1.0
	if h&0x8000 != 0 {
		sign = -1
	}
	exp, frac := int(h>>10&0x1f), float64(h&0x3ff)
	switch exp {
	case 0:
		return sign * frac * math.Pow(2, -24)
	case 31:
		if frac == 0 {
			return sign * math.Inf(1)
		}
		return math.NaN()
	}
	return sign * (1 + frac/1024) * math.Pow(2, float64(exp-15))
}

// floatTensor encodes float32 data as a TensorProto with raw little-endian data.
func floatTensor(name string, shape []int, data []float32) *onnxpb.TensorProto {
	raw := make([]byte, 4*len(data))
	for k, v := range data {
		binary.LittleEndian.PutUint32(raw[4*k:], math.Float32bits(v))
	}
	return &onnxpb.TensorProto{Name: &name, Dims: dims64(shape), DataType: ptr(int32(dtFloat)), RawData: raw}
}

// intTensor encodes int64 data.
func intTensor(name string, shape []int, data []int64) *onnxpb.TensorProto {
	return &onnxpb.TensorProto{Name: &name, Dims: dims64(shape), DataType: ptr(int32(dtInt64)), Int64Data: data}
}

func dims64(shape []int) []int64 {
	d := make([]int64, len(shape))
	for k, v := range shape {
		d[k] = int64(v)
	}
	return d
}

func ptr[T any](v T) *T { return &v }
