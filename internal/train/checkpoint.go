package train

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"strconv"

	"move/internal/data"
	"move/internal/modelfile"
	"move/internal/models"
	"move/internal/nn"
	"move/internal/tensor"
)

// A checkpoint is a model file whose extra tensors hold the optimiser state
// ("optim.<buffer>.<param>") and whose metadata holds the recipe and the epochs done.

// Fingerprint identifies a training set: its size, image shape, classes, labels and pixels
// (SHA-256). A checkpoint records it, so that training resumes only on the same data.
func Fingerprint(set *data.Set) string {
	h := sha256.New()
	fmt.Fprintf(h, "%d %dx%d %q\n", set.Len(), set.H, set.W, set.Classes)
	lb := make([]byte, 0, 4*len(set.Labels))
	for _, l := range set.Labels {
		lb = binary.LittleEndian.AppendUint32(lb, uint32(l))
	}
	h.Write(lb)
	h.Write(set.Pixels)
	return fmt.Sprintf("%d images %dx%d, sha256 %x", set.Len(), set.H, set.W, h.Sum(nil)[:12])
}

func saveCheckpoint(path string, m models.Model, opt nn.Optimizer, c Config, epochs int, hist []EpochResult, info modelfile.Info, dataID string) error {
	ts, meta, err := modelfile.Encode(m, info)
	if err != nil {
		return fmt.Errorf("checkpoint %s: %w", path, err)
	}
	names := m.Store().ParamNames()
	for buf, vals := range opt.State() {
		for i, v := range vals {
			ts["optim."+buf+"."+names[i]] = tensor.From(append([]float32(nil), v...), len(v))
		}
	}
	h, err := json.Marshal(hist)
	if err != nil {
		return fmt.Errorf("checkpoint %s: %w", path, err)
	}
	meta["train.config"] = configJSON(c)
	meta["train.epochs_done"] = strconv.Itoa(epochs)
	meta["train.optimizer_steps"] = strconv.Itoa(opt.Steps())
	meta["train.history"] = string(h)
	meta["train.arch"] = m.Arch()
	meta["train.data"] = dataID
	return modelfile.SaveTensors(path, ts, meta, true)
}

func loadCheckpoint(path string, m models.Model, opt nn.Optimizer, c Config, dataID string) (int, []EpochResult, error) {
	bad := func(f string, a ...any) error { return fmt.Errorf("resuming from %s: %s", path, fmt.Sprintf(f, a...)) }
	ts, meta, err := modelfile.LoadTensors(path)
	if err != nil {
		return 0, nil, bad("%v", err)
	}
	if got := meta["train.arch"]; got != "" && got != m.Arch() {
		return 0, nil, bad("it holds a %s, this run trains a %s; remove it or train the same architecture", got, m.Arch())
	}
	if got := meta["train.data"]; got != dataID {
		if got == "" {
			got = "not recorded (an older checkpoint)"
		}
		return 0, nil, bad("it was made on other training data (%s; this run's: %s): the model's provenance would be false; remove it or train on the same data", got, dataID)
	}
	if got := meta["train.config"]; got != configJSON(c) {
		return 0, nil, bad("it was made with another recipe (%s); remove it or use the same settings", got)
	}
	epochs, err := strconv.Atoi(meta["train.epochs_done"])
	if err != nil {
		return 0, nil, bad("no epoch count")
	}
	steps, _ := strconv.Atoi(meta["train.optimizer_steps"])
	var hist []EpochResult
	if err := json.Unmarshal([]byte(meta["train.history"]), &hist); err != nil {
		return 0, nil, bad("bad history: %v", err)
	}
	state := map[string][][]float32{}
	model := map[string]*tensor.Tensor{}
	names := m.Store().ParamNames()
	for n, t := range ts {
		model[n] = t
	}
	for buf := range opt.State() {
		vals := make([][]float32, len(names))
		for i, pn := range names {
			k := "optim." + buf + "." + pn
			t, ok := ts[k]
			if !ok {
				return 0, nil, bad("optimizer state %s is missing", k)
			}
			vals[i] = t.Data
			delete(model, k)
		}
		state[buf] = vals
	}
	m2, info, err := modelfile.Decode(model, meta, path)
	if err != nil {
		return 0, nil, bad("%v", err)
	}
	if info.Arch != m.Arch() {
		return 0, nil, bad("it holds a %s, this run trains a %s", info.Arch, m.Arch())
	}
	if err := m.Store().Load(m2.Store().Map()); err != nil {
		return 0, nil, bad("%v", err)
	}
	opt.Restore(state, steps)
	return epochs, hist, nil
}
