package watermark

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"move/internal/atomicfile"
	"move/internal/data"
	"move/internal/style"
)

// Control is one control style and the key samples styled with it. A control style is one the
// victim never trained on: verification compares a model's answer to the owner's style with
// its answer to the control styles on the same images, so a model that treats every style
// alike (a confident converged classifier, a constant one) carries no evidence of theft,
// whatever its answers look like.
type Control struct {
	Name    string   `json:"name"`
	Style   StyleRef `json:"style"`   // the control style image; a copy is stored beside the key
	Samples []int    `json:"samples"` // indices into Key.Samples, ascending
	Files   []string `json:"files"`   // styled files relative to the output folder, parallel to Samples
	// Stylizer is the control style's feed-forward network (a key made with
	// MethodFeedForward styles its controls the same way), relative to the key file.
	Stylizer string `json:"stylizer,omitempty"`
}

// ControlOptions configure AddControls.
type ControlOptions struct {
	// Styles are control style images. Empty: Count procedural styles (style.Control).
	Styles []string
	Count  int // procedural control styles when Styles is empty (default 2)
	// Samples is how many key samples (chosen at random from Seed) get control versions; 0 or
	// more than the key has: all of them.
	Samples  int
	Seed     uint64
	Style    style.Options // the transfer; the key's own parameters when zero
	Force    bool          // replace controls the key already has
	Progress func(done, total int, elapsed time.Duration)
}

// HasControls reports whether the key has control styles for at least some samples.
func (k *Key) HasControls() bool { return len(k.Controls) > 0 }

// AddControls styles a subset of the key's samples with each control style, writes them under
// the key's output folder (controls/<name>/...) and rewrites the key file (atomically) with
// the controls recorded. Every control covers the same samples.
func AddControls(ctx context.Context, keyPath string, o ControlOptions) (*Key, error) {
	k, err := LoadKey(keyPath)
	if err != nil {
		return nil, err
	}
	if k.HasControls() && !o.Force {
		return nil, fmt.Errorf("%s already has %d control styles: %w", keyPath, len(k.Controls), atomicfile.ErrExists)
	}
	if len(k.Samples) == 0 {
		return nil, fmt.Errorf("%s has no transformed samples", keyPath)
	}
	opt := o.Style
	if opt.Steps == 0 {
		opt = k.Params
	}
	if err := opt.Validate(); err != nil {
		return nil, err
	}
	type styleImg struct {
		name, origin, ext string
		raw               []byte // file bytes (PNG for procedural styles)
		pix               []uint8
		h, w              int
	}
	var styles []styleImg
	if len(o.Styles) == 0 {
		n := o.Count
		if n <= 0 {
			n = 2
		}
		for i := range n {
			pix, h, w := style.Control(i)
			raw, err := data.EncodePNG(pix, h, w)
			if err != nil {
				return nil, err
			}
			styles = append(styles, styleImg{fmt.Sprintf("control-%d", i+1), fmt.Sprintf("procedural:%d", i), ".png", raw, pix, h, w})
		}
	}
	for i, p := range o.Styles {
		raw, err := os.ReadFile(p)
		if err != nil {
			return nil, fmt.Errorf("control style image: %w", err)
		}
		pix, h, w, err := data.DecodeImage(raw, p, 0)
		if err != nil {
			return nil, fmt.Errorf("control style image: %w", err)
		}
		styles = append(styles, styleImg{fmt.Sprintf("control-%d", i+1), p, strings.ToLower(filepath.Ext(p)), raw, pix, h, w})
	}
	for _, s := range styles {
		sum := sha256.Sum256(s.raw)
		if hex.EncodeToString(sum[:]) == k.Style.SHA256 {
			return nil, fmt.Errorf("control style %s is the owner's style image: a control must be a style the victim never trained on", s.origin)
		}
	}
	n := o.Samples
	if n <= 0 || n > len(k.Samples) {
		n = len(k.Samples)
	}
	idx := rand.New(rand.NewPCG(o.Seed, 0x63746c)).Perm(len(k.Samples))[:n]
	sort.Ints(idx)
	dir := filepath.Join(k.dir, "controls")
	tmp := dir + ".tmp"
	os.RemoveAll(tmp)
	defer os.RemoveAll(tmp)
	total, done, start := n*len(styles), 0, time.Now()
	var controls []Control
	for _, s := range styles {
		tr, err := style.New(s.pix, s.h, s.w, opt)
		if err != nil {
			return nil, fmt.Errorf("control style %s: %w", s.origin, err)
		}
		sum := sha256.Sum256(s.raw)
		c := Control{Name: s.name, Samples: idx,
			Style: StyleRef{File: filepath.ToSlash(filepath.Join("controls", s.name, "style"+s.ext)), Origin: filepath.Base(s.origin), SHA256: hex.EncodeToString(sum[:])}}
		if err := os.MkdirAll(filepath.Join(tmp, s.name), 0o755); err != nil {
			return nil, err
		}
		if err := atomicfile.WriteBytes(filepath.Join(tmp, s.name, "style"+s.ext), false, s.raw); err != nil {
			return nil, err
		}
		apply := tr.Apply
		if k.Method == MethodFeedForward {
			if k.Feed == nil {
				return nil, fmt.Errorf("%s: a feed-forward key without its stylizer's options", keyPath)
			}
			st, err := controlStylizer(k, idx, tr, *k.Feed)
			if err != nil {
				return nil, fmt.Errorf("control style %s: %w", s.origin, err)
			}
			c.Stylizer = filepath.ToSlash(filepath.Join("controls", s.name, StylizerFile))
			if err := st.Save(filepath.Join(tmp, s.name, StylizerFile), false); err != nil {
				return nil, err
			}
			apply = st.Apply
		}
		const chunk = 64
		for a := 0; a < len(idx); a += chunk {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
			part := idx[a:min(len(idx), a+chunk)]
			paths := make([]string, len(part))
			for i, si := range part {
				if paths[i], err = k.Original(si); err != nil {
					return nil, err
				}
			}
			pix, sizes, err := styleFiles(apply, paths)
			if err != nil {
				return nil, err
			}
			for i, si := range part {
				styled := k.Samples[si].Styled
				inner := strings.TrimSuffix(styled, filepath.Ext(styled)) + ".png"
				if err := os.MkdirAll(filepath.Dir(filepath.Join(tmp, s.name, inner)), 0o755); err != nil {
					return nil, err
				}
				if err := data.WritePNG(filepath.Join(tmp, s.name, inner), pix[i], sizes[i][0], sizes[i][1], false); err != nil {
					return nil, err
				}
				c.Files = append(c.Files, filepath.ToSlash(filepath.Join("controls", s.name, inner)))
			}
			done += len(part)
			if o.Progress != nil {
				o.Progress(done, total, time.Since(start))
			}
		}
		controls = append(controls, c)
	}
	if err := markKeyData(tmp); err != nil {
		return nil, err
	}
	if err := os.RemoveAll(dir); err != nil {
		return nil, err
	}
	if err := os.Rename(tmp, dir); err != nil {
		return nil, fmt.Errorf("writing %s: %w", dir, err)
	}
	k.Controls = controls
	kb, _ := json.MarshalIndent(k, "", "  ")
	if err := atomicfile.WriteBytes(keyPath, true, append(kb, '\n')); err != nil {
		return nil, err
	}
	return k, nil
}

// controlStylizer trains a control style's stylizer as the key's own was trained: on up to
// 256 of the originals of the control samples idx (evenly spread).
func controlStylizer(k *Key, idx []int, tr *style.Transformer, feed style.FeedOptions) (*style.Stylizer, error) {
	paths := make([]string, len(idx))
	for i, si := range idx {
		f, err := k.Original(si)
		if err != nil {
			return nil, err
		}
		paths[i] = f
	}
	return trainStylizer(tr, paths, 256, feed, nil)
}

// controlFiles maps each sample index to its control files (one per control, in order) for
// the samples every control covers.
func (k *Key) controlFiles() (map[int][]string, error) {
	if len(k.Controls) == 0 {
		return nil, nil
	}
	out := map[int][]string{}
	for ci, c := range k.Controls {
		if len(c.Files) != len(c.Samples) {
			return nil, fmt.Errorf("control %s lists %d samples and %d files", c.Name, len(c.Samples), len(c.Files))
		}
		for j, si := range c.Samples {
			if si < 0 || si >= len(k.Samples) {
				return nil, fmt.Errorf("control %s names sample %d; the key has %d", c.Name, si, len(k.Samples))
			}
			if ci == 0 {
				out[si] = []string{c.Files[j]}
			} else if f, ok := out[si]; ok && len(f) == ci {
				out[si] = append(f, c.Files[j])
			}
		}
	}
	for si, f := range out {
		if len(f) != len(k.Controls) {
			delete(out, si)
		}
	}
	if len(out) == 0 {
		return nil, errors.New("no key sample is covered by every control style")
	}
	return out, nil
}
