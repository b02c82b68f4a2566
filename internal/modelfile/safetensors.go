// Package modelfile saves and loads models: a safetensors container whose tensors are the
// weights (in PyTorch's layout, so the file also loads with the safetensors library) and whose
// metadata holds what is needed to use them: architecture, classes, input size, normalisation,
// and how the model was made (command line, seed, parent model, move version).
package modelfile

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"sort"

	"move/internal/atomicfile"
	"move/internal/data"
	"move/internal/tensor"
)

// maxHeader bounds the JSON header, so a hostile length cannot make us allocate gigabytes.
const maxHeader = 64 << 20

type entry struct {
	Dtype   string   `json:"dtype"`
	Shape   []int    `json:"shape"`
	Offsets [2]int64 `json:"data_offsets"`
}

// WriteSafetensors writes float32 tensors and string metadata to w in the safetensors format:
// an 8-byte little-endian header length, a JSON header, then the raw little-endian data.
func WriteSafetensors(w io.Writer, tensors map[string]*tensor.Tensor, meta map[string]string) error {
	names := make([]string, 0, len(tensors))
	for n := range tensors {
		names = append(names, n)
	}
	sort.Strings(names)
	header := map[string]any{}
	if len(meta) > 0 {
		header["__metadata__"] = meta
	}
	var off int64
	for _, n := range names {
		t := tensors[n]
		size := int64(4 * t.Len())
		header[n] = entry{Dtype: "F32", Shape: t.Shape, Offsets: [2]int64{off, off + size}}
		off += size
	}
	hb, err := json.Marshal(header)
	if err != nil {
		return err
	}
	for len(hb)%8 != 0 { // align the data section, as the reference writer does
		hb = append(hb, ' ')
	}
	var lb [8]byte
	binary.LittleEndian.PutUint64(lb[:], uint64(len(hb)))
	if _, err := w.Write(lb[:]); err != nil {
		return err
	}
	if _, err := w.Write(hb); err != nil {
		return err
	}
	buf := make([]byte, 0, 1<<16)
	for _, n := range names {
		for _, v := range tensors[n].Data {
			buf = binary.LittleEndian.AppendUint32(buf, math.Float32bits(v))
			if len(buf) >= 1<<16 {
				if _, err := w.Write(buf); err != nil {
					return err
				}
				buf = buf[:0]
			}
		}
	}
	_, err = w.Write(buf)
	return err
}

// ReadSafetensors parses a safetensors file held in memory. Only F32 tensors are accepted;
// offsets must lie inside the data section and match the shapes.
func ReadSafetensors(b []byte, name string) (map[string]*tensor.Tensor, map[string]string, error) {
	bad := func(f string, a ...any) error {
		return fmt.Errorf("%s: not a valid safetensors file: %s", name, fmt.Sprintf(f, a...))
	}
	if len(b) < 8 {
		return nil, nil, bad("%d bytes, too short", len(b))
	}
	hl := binary.LittleEndian.Uint64(b[:8])
	if hl > maxHeader || hl > uint64(len(b)-8) {
		return nil, nil, bad("header length %d exceeds the file", hl)
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(b[8:8+hl], &raw); err != nil {
		return nil, nil, bad("header: %v", err)
	}
	data := b[8+hl:]
	meta := map[string]string{}
	out := map[string]*tensor.Tensor{}
	var spans [][2]int64 // every tensor's [lo, hi): they must tile the data section exactly
	for n, r := range raw {
		if n == "__metadata__" {
			if err := json.Unmarshal(r, &meta); err != nil {
				return nil, nil, bad("metadata: %v", err)
			}
			continue
		}
		var e entry
		if err := json.Unmarshal(r, &e); err != nil {
			return nil, nil, bad("tensor %q: %v", n, err)
		}
		if e.Dtype != "F32" {
			return nil, nil, bad("tensor %q has dtype %s; only F32 is supported", n, e.Dtype)
		}
		count := int64(1)
		for _, d := range e.Shape {
			if d < 0 || (d > 0 && count > math.MaxInt32/int64(d)) {
				return nil, nil, bad("tensor %q has shape %v", n, e.Shape)
			}
			count *= int64(d)
		}
		lo, hi := e.Offsets[0], e.Offsets[1]
		if lo < 0 || hi < lo || hi > int64(len(data)) || hi-lo != 4*count {
			return nil, nil, bad("tensor %q: offsets %v do not fit shape %v in %d data bytes", n, e.Offsets, e.Shape, len(data))
		}
		spans = append(spans, [2]int64{lo, hi})
		t := &tensor.Tensor{Shape: e.Shape, Data: make([]float32, count)}
		for i := range t.Data {
			t.Data[i] = math.Float32frombits(binary.LittleEndian.Uint32(data[lo+4*int64(i):]))
		}
		out[n] = t
	}
	// Tensors may neither share bytes nor leave bytes unaccounted for (the format's rule): a
	// file whose tensors overlap is not one a writer made.
	sort.Slice(spans, func(i, j int) bool {
		return spans[i][0] < spans[j][0] || (spans[i][0] == spans[j][0] && spans[i][1] < spans[j][1])
	})
	end := int64(0)
	for _, sp := range spans {
		if sp[0] == sp[1] {
			continue
		}
		if sp[0] < end {
			return nil, nil, bad("tensors overlap at data byte %d", sp[0])
		}
		if sp[0] > end {
			return nil, nil, bad("data bytes %d to %d belong to no tensor", end, sp[0])
		}
		end = sp[1]
	}
	if end != int64(len(data)) {
		return nil, nil, bad("data bytes %d to %d belong to no tensor", end, len(data))
	}
	return out, meta, nil
}

// MaxFile bounds the size of a model file read into memory.
const MaxFile = 4 << 30

// SaveTensors writes a safetensors file atomically.
func SaveTensors(path string, tensors map[string]*tensor.Tensor, meta map[string]string, overwrite bool) error {
	return atomicfile.Write(path, overwrite, func(w io.Writer) error { return WriteSafetensors(w, tensors, meta) })
}

// LoadTensors reads a safetensors file.
func LoadTensors(path string) (map[string]*tensor.Tensor, map[string]string, error) {
	b, err := data.ReadRegular(path, MaxFile)
	if err != nil {
		return nil, nil, err
	}
	return ReadSafetensors(b, path)
}
