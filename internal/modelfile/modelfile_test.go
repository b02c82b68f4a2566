package modelfile

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"move/internal/atomicfile"
	"move/internal/data"
	"move/internal/models"
	"move/internal/nn"
	"move/internal/tensor"
)

func TestSaveLoadRoundTrip(t *testing.T) {
	m, _ := models.New("resnet20", 3, 7)
	// Make buffers non-default so their round trip is checked too.
	m.Store().Tensor("stembn.running_mean").Data[0] = 0.25
	info := Info{Classes: []string{"a", "b", "c"}, InputSize: 32, Norm: data.CIFAR10Norm, Seed: 7, Command: "move train"}
	p := filepath.Join(t.TempDir(), "m.safetensors")
	if err := Save(p, m, info, false); err != nil {
		t.Fatal(err)
	}
	if err := Save(p, m, info, false); !errors.Is(err, atomicfile.ErrExists) {
		t.Fatalf("overwrite without permission: %v", err)
	}
	m2, info2, err := Load(p, ONNXDefaults{})
	if err != nil {
		t.Fatal(err)
	}
	if info2.Arch != "resnet20" || info2.Classes[2] != "c" || info2.Seed != 7 || info2.Norm != data.CIFAR10Norm {
		t.Fatalf("info %+v", info2)
	}
	x := nn.Const(tensor.New(2, 32, 32, 3))
	for i := range x.Data() {
		x.Data()[i] = float32(i%13) / 13
	}
	a := m.Forward(nil, x, false).Data()
	b := m2.Forward(nil, x, false).Data()
	for i := range a {
		if a[i] != b[i] {
			t.Fatalf("logit %d: %g before saving, %g after", i, a[i], b[i])
		}
	}
}

// The conv weights are stored in PyTorch's OIHW layout.
func TestPyTorchLayout(t *testing.T) {
	w := tensor.New(2, 3, 3, 4) // OHWI
	for i := range w.Data {
		w.Data[i] = float32(i)
	}
	p := ohwiToOIHW(w)
	// OHWI[o=1][y=2][x=0][i=3] == OIHW[1][3][2][0]
	if p.Data[((1*4+3)*3+2)*3+0] != w.Data[((1*3+2)*3+0)*4+3] {
		t.Fatal("layout conversion is wrong")
	}
	back := oihwToOHWI(p)
	for i := range w.Data {
		if back.Data[i] != w.Data[i] {
			t.Fatal("conversion does not invert")
		}
	}
}

func TestHostileFiles(t *testing.T) {
	var good bytes.Buffer
	WriteSafetensors(&good, map[string]*tensor.Tensor{"w": tensor.New(2, 2)}, map[string]string{"k": "v"})
	cases := map[string][]byte{
		"short":          {1, 2, 3},
		"huge header":    binary.LittleEndian.AppendUint64(nil, 1<<62),
		"truncated data": good.Bytes()[:good.Len()-4],
		"bad json":       append(binary.LittleEndian.AppendUint64(nil, 3), []byte("{x}")...),
	}
	hdr := func(s string) []byte {
		return append(binary.LittleEndian.AppendUint64(nil, uint64(len(s))), []byte(s)...)
	}
	cases["negative shape"] = hdr(`{"w":{"dtype":"F32","shape":[-1],"data_offsets":[0,0]}}`)
	cases["huge shape"] = hdr(`{"w":{"dtype":"F32","shape":[100000,100000,100000],"data_offsets":[0,4]}}`)
	cases["f16"] = hdr(`{"w":{"dtype":"F16","shape":[1],"data_offsets":[0,2]}}`)
	for name, b := range cases {
		if _, _, err := ReadSafetensors(b, name); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if _, _, err := ReadSafetensors(good.Bytes(), "good"); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	p := filepath.Join(dir, "plain.safetensors")
	os.WriteFile(p, good.Bytes(), 0o644)
	if _, _, err := Load(p, ONNXDefaults{}); err == nil || !strings.Contains(err.Error(), "no move metadata") {
		t.Fatalf("file without metadata: %v", err)
	}
}

func FuzzReadSafetensors(f *testing.F) {
	var good bytes.Buffer
	WriteSafetensors(&good, map[string]*tensor.Tensor{"w": tensor.New(2, 3)}, map[string]string{"k": "v"})
	f.Add(good.Bytes())
	f.Add([]byte{0, 0, 0, 0, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		ts, _, err := ReadSafetensors(b, "fuzz")
		if err != nil {
			return
		}
		for n, x := range ts {
			if len(x.Data) != tensor.Numel(x.Shape) {
				t.Fatalf("tensor %s: %d values for shape %v", n, len(x.Data), x.Shape)
			}
		}
	})
}

func TestMatchClasses(t *testing.T) {
	named := Info{Classes: []string{"cat", "dog"}}
	if err := named.MatchClasses([]string{"cat", "dog"}, "d"); err != nil {
		t.Fatal(err)
	}
	if err := named.MatchClasses([]string{"dog", "cat"}, "d"); err == nil || !strings.Contains(err.Error(), `class 0 is "cat", d's is "dog"`) {
		t.Fatalf("swapped classes: %v", err)
	}
	if err := named.MatchClasses([]string{"cat"}, "d"); err == nil || !strings.Contains(err.Error(), "2 classes, d has 1") {
		t.Fatalf("another count: %v", err)
	}
	numbered := Info{Classes: []string{"0", "1"}}
	if err := numbered.MatchClasses([]string{"cat", "dog"}, "d"); err != nil {
		t.Fatalf("an import without names: %v", err)
	}
}

// Broken or hostile model files are refused with the reason (issue 16, items 2 and 13).
func TestHostileModelFiles(t *testing.T) {
	dir := t.TempDir()
	m, _ := models.New("resnet20", 2, 1)
	info := Info{Classes: []string{"a", "b"}, InputSize: 16, Norm: data.CIFAR10Norm}
	// A NaN weight.
	m.Store().Tensor("stembn.running_mean").Data[3] = float32(math.NaN())
	nanPath := filepath.Join(dir, "nan.safetensors")
	if err := Save(nanPath, m, info, false); err != nil {
		t.Fatal(err)
	}
	if _, _, err := Load(nanPath, ONNXDefaults{}); err == nil || !strings.Contains(err.Error(), "stembn.running_mean has 1 NaN or infinite values") {
		t.Fatalf("a NaN weight: %v", err)
	}
	m.Store().Tensor("stembn.running_mean").Data[3] = 0
	// A declared input size that would make every image 100000 x 100000.
	big := info
	big.InputSize = 100000
	bigPath := filepath.Join(dir, "big.safetensors")
	if err := Save(bigPath, m, big, false); err != nil {
		t.Fatal(err)
	}
	if _, _, err := Load(bigPath, ONNXDefaults{}); err == nil || !strings.Contains(err.Error(), "input size 100000 is outside [0, 1024]") {
		t.Fatalf("input size 100000: %v", err)
	}
	// Two tensors over the same bytes, and bytes that belong to no tensor.
	one := &tensor.Tensor{Shape: []int{2}, Data: []float32{1, 2}}
	var buf bytes.Buffer
	if err := WriteSafetensors(&buf, map[string]*tensor.Tensor{"a": one, "b": one}, nil); err != nil {
		t.Fatal(err)
	}
	good := buf.Bytes()
	hl := binary.LittleEndian.Uint64(good[:8])
	header := string(good[8 : 8+hl])
	for name, edit := range map[string]func(string) string{
		"tensors overlap at data byte 0": func(h string) string { return strings.Replace(h, `"data_offsets":[8,16]`, `"data_offsets":[0,8]`, 1) },
		"belong to no tensor": func(h string) string {
			return strings.Replace(h, `"b":{"dtype":"F32","shape":[2],"data_offsets":[8,16]}`, `"b":{"dtype":"F32","shape":[0],"data_offsets":[8,8]}`, 1)
		},
	} {
		h := edit(header)
		if h == header {
			t.Fatalf("%s: the header %s did not change", name, header)
		}
		for len(h) < len(header) {
			h += " "
		}
		b := append(append(append([]byte(nil), good[:8]...), []byte(h)...), good[8+hl:]...)
		binary.LittleEndian.PutUint64(b[:8], uint64(len(h)))
		if _, _, err := ReadSafetensors(b, "x.safetensors"); err == nil || !strings.Contains(err.Error(), name) {
			t.Errorf("%s: %v", name, err)
		}
	}
}
