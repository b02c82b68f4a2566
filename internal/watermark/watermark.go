// Package watermark embeds MOVE's external features into a training set: a fraction of each
// class is style-transferred with the owner's style image (labels unchanged), the result is
// written as a new image folder, and a key file records exactly what was done.
package watermark

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"move/internal/atomicfile"
	"move/internal/buildinfo"
	"move/internal/data"
	"move/internal/style"
)

// Key formats. Format 2 keeps a copy of every styled sample's original inside the key's folder
// and names every file relative to the key file, so that the folder can be archived and the key
// verified anywhere; format 1 (still read) named originals by paths relative to where embed ran.
const (
	FormatV1 = "move-watermark-key/1"
	FormatV2 = "move-watermark-key/2"
)

// KeyDataMarker marks the folders of a key that hold key material (originals, controls), not
// training classes: data.ListFolder skips a folder that holds a file of this name.
const KeyDataMarker = data.KeyDataMarker

// Key is the watermark key: everything needed to find and reproduce the transformed samples.
type Key struct {
	Format  string        `json:"format"` // FormatV2 (FormatV1 is read)
	Version string        `json:"move_version"`
	Command string        `json:"command,omitempty"`
	Created string        `json:"created"`
	Style   StyleRef      `json:"style"`
	Rate    float64       `json:"rate"`
	Seed    uint64        `json:"seed"`
	Method  string        `json:"method"`
	Params  style.Options `json:"params"`
	Source  string        `json:"source"` // the clean data set (folder root)
	Output  string        `json:"output"` // the watermarked folder
	Split   string        `json:"split"`  // the split that was watermarked ("train" or "")
	Classes []string      `json:"classes"`
	Samples []Sample      `json:"samples"`
	// Controls are control styles applied to some samples (AddControls): what verification
	// compares the owner's style with.
	Controls []Control `json:"controls,omitempty"`

	dir     string // the folder of the key file: what its relative paths start from
	resumed int    // styled images an interrupted Embed had made
}

// StyleRef identifies the style image; a copy is stored beside the key.
type StyleRef struct {
	File   string `json:"file"`   // the copy, relative to the key file
	Origin string `json:"origin"` // where it was read from
	SHA256 string `json:"sha256"`
}

// Sample is one transformed training image.
type Sample struct {
	Source string `json:"source"`           // the original: a copy in the key's folder, relative to the key file (format 1: where it was read)
	Origin string `json:"origin,omitempty"` // the original's path in the clean data set, relative to its root
	Class  string `json:"class"`
	Label  int    `json:"label"`
	Styled string `json:"styled"` // styled file, relative to the key file
}

// Method names the transfer implemented by package style.
const Method = "random-feature-gram"

// Options for Embed.
type Options struct {
	Data, StyleImage, Out string
	Rate                  float64
	Seed                  uint64
	Style                 style.Options
	Force                 bool
	Command               string
	Progress              func(done, total int, elapsed time.Duration)
}

// inside reports whether path p is dir or inside it, once symbolic links are resolved (a link
// to "." must not let the output replace its own input).
func inside(p, dir string) bool {
	ap, err1 := realPath(p)
	ad, err2 := realPath(dir)
	if err1 != nil || err2 != nil {
		return true // cannot tell: refuse, as if inside
	}
	rel, err := filepath.Rel(ad, ap)
	return err == nil && (rel == "." || (rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator))))
}

// realPath is p made absolute with symbolic links resolved in the longest part of it that
// exists (the rest, not yet created, kept as it is).
func realPath(p string) (string, error) {
	ap, err := filepath.Abs(p)
	if err != nil {
		return "", err
	}
	for cur := ap; ; cur = filepath.Dir(cur) {
		if r, err := filepath.EvalSymlinks(cur); err == nil {
			rest, _ := filepath.Rel(cur, ap)
			return filepath.Join(r, rest), nil
		}
		if filepath.Dir(cur) == cur {
			return ap, nil
		}
	}
}

// Embed writes the watermarked copy of o.Data to o.Out and returns its key (also written to
// o.Out/key.json with the style image beside it). The source folder is never modified; the
// output appears all at once (built in a temporary folder, then renamed) and an existing output
// is replaced only with Force.
func Embed(ctx context.Context, o Options) (*Key, error) {
	if !(o.Rate > 0 && o.Rate <= 1) {
		return nil, fmt.Errorf("rate must be in (0, 1], got %g", o.Rate)
	}
	if o.Out == "" {
		return nil, errors.New("no output folder given")
	}
	if inside(o.Out, o.Data) {
		return nil, fmt.Errorf("output %s is inside the input %s: choose a folder outside it", o.Out, o.Data)
	}
	if inside(o.Data, o.Out) {
		return nil, fmt.Errorf("input %s is inside the output %s", o.Data, o.Out)
	}
	if _, err := os.Stat(o.Out); err == nil && !o.Force {
		return nil, fmt.Errorf("%s: %w", o.Out, atomicfile.ErrExists)
	}
	styleBytes, err := os.ReadFile(o.StyleImage)
	if err != nil {
		return nil, fmt.Errorf("style image: %w", err)
	}
	spix, sh, sw, err := data.DecodeImage(styleBytes, o.StyleImage, 0)
	if err != nil {
		return nil, fmt.Errorf("style image: %w", err)
	}
	tr, err := style.New(spix, sh, sw, o.Style)
	if err != nil {
		return nil, err
	}
	// The split to watermark: DATA/train when present, else DATA itself.
	root, split := o.Data, ""
	if st, err := os.Stat(filepath.Join(o.Data, "train")); err == nil && st.IsDir() {
		root, split = filepath.Join(o.Data, "train"), "train"
	}
	classes, files, err := data.ListFolder(root)
	if err != nil {
		return nil, err
	}
	rng := rand.New(rand.NewPCG(o.Seed, 0x656d6264))
	type job struct {
		src   string
		label int
	}
	var jobs []job
	chosen := map[string]bool{}
	for c, fs := range files {
		k := int(math.Round(o.Rate * float64(len(fs))))
		if k == 0 && len(fs) > 0 {
			k = 1
		}
		for _, i := range rng.Perm(len(fs))[:k] {
			jobs = append(jobs, job{fs[i], c})
			chosen[fs[i]] = true
		}
	}
	sort.Slice(jobs, func(a, b int) bool { return jobs[a].src < jobs[b].src })

	parent := filepath.Dir(filepath.Clean(o.Out))
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return nil, err
	}
	// The output is built in OUT's partial folder, which an interrupted run leaves behind and
	// the same command resumes from (the images already styled are kept); a run with other
	// settings starts it afresh.
	tmp := filepath.Join(parent, "."+filepath.Base(o.Out)+".partial")
	absData, _ := filepath.Abs(o.Data)
	conf, _ := json.Marshal(map[string]any{"style_sha256": fmt.Sprintf("%x", sha256.Sum256(styleBytes)), "rate": o.Rate, "seed": o.Seed,
		"params": o.Style, "data": absData, "method": Method, "format": FormatV2})
	resumed := 0
	if b, err := os.ReadFile(filepath.Join(tmp, embedConfig)); err != nil || !bytes.Equal(b, conf) {
		if err := os.RemoveAll(tmp); err != nil {
			return nil, err
		}
	}
	if err := os.MkdirAll(tmp, 0o755); err != nil {
		return nil, fmt.Errorf("creating output: %w", err)
	}
	if err := atomicfile.WriteBytes(filepath.Join(tmp, embedConfig), true, conf); err != nil {
		return nil, err
	}
	done := false
	defer func() {
		// A run that failed on its input leaves nothing; an interrupted one (the context
		// ended, or the process was killed) leaves its partial folder to resume from.
		if !done && ctx.Err() == nil {
			os.RemoveAll(tmp)
		}
	}()
	if stale, _ := filepath.Glob(filepath.Join(parent, "."+filepath.Base(o.Out)+".tmp-*")); len(stale) > 0 {
		for _, d := range stale { // left by versions that could not resume
			os.RemoveAll(d)
		}
	}
	// Copy everything that is not styled: the other splits and the untouched images.
	if err := copyTree(o.Data, tmp, func(p string) bool { return chosen[p] }); err != nil {
		return nil, err
	}
	key := &Key{Format: FormatV2, Version: buildinfo.Version, Command: o.Command,
		Created: time.Now().UTC().Format(time.RFC3339), Rate: o.Rate, Seed: o.Seed, Method: Method,
		Params: o.Style, Source: o.Data, Output: o.Out, Split: split, Classes: classes}
	sum := sha256.Sum256(styleBytes)
	key.Style = StyleRef{File: "style" + strings.ToLower(filepath.Ext(o.StyleImage)), Origin: filepath.Base(o.StyleImage), SHA256: hex.EncodeToString(sum[:])}
	start := time.Now()
	const chunk = 64
	for s := 0; s < len(jobs); s += chunk {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		part := jobs[s:min(len(jobs), s+chunk)]
		var todo []int // the jobs of this chunk not styled by an interrupted run
		for i, j := range part {
			origin, _ := filepath.Rel(o.Data, j.src)
			rel := strings.TrimSuffix(origin, filepath.Ext(origin)) + ".png"
			if !exists(filepath.Join(tmp, rel)) || !exists(filepath.Join(tmp, originals, origin)) {
				todo = append(todo, i)
			}
		}
		resumed += len(part) - len(todo)
		paths := make([]string, len(todo))
		for k, i := range todo {
			paths[k] = part[i].src
		}
		styled, sizes, err := styleFiles(tr, paths)
		if err != nil {
			return nil, err
		}
		k := 0
		for i, j := range part {
			origin, _ := filepath.Rel(o.Data, j.src)
			rel := strings.TrimSuffix(origin, filepath.Ext(origin)) + ".png"
			orig := filepath.Join(originals, origin)
			if k < len(todo) && todo[k] == i {
				if err := data.WritePNG(filepath.Join(tmp, rel), styled[k], sizes[k][0], sizes[k][1], true); err != nil {
					return nil, err
				}
				if err := copyFile(j.src, filepath.Join(tmp, orig)); err != nil {
					return nil, err
				}
				k++
			}
			key.Samples = append(key.Samples, Sample{Source: filepath.ToSlash(orig), Origin: filepath.ToSlash(origin), Class: classes[j.label],
				Label: j.label, Styled: filepath.ToSlash(rel)})
		}
		if o.Progress != nil {
			o.Progress(min(len(jobs), s+chunk), len(jobs), time.Since(start))
		}
	}
	if err := markKeyData(filepath.Join(tmp, originals)); err != nil {
		return nil, err
	}
	if err := atomicfile.WriteBytes(filepath.Join(tmp, key.Style.File), false, styleBytes); err != nil {
		return nil, err
	}
	kb, _ := json.MarshalIndent(key, "", "  ")
	if err := atomicfile.WriteBytes(filepath.Join(tmp, "key.json"), false, append(kb, '\n')); err != nil {
		return nil, err
	}
	if err := os.Remove(filepath.Join(tmp, embedConfig)); err != nil {
		return nil, err
	}
	if err := replaceDir(tmp, o.Out, o.Force); err != nil {
		return nil, err
	}
	done = true
	key.dir, key.resumed = o.Out, resumed
	return key, nil
}

// embedConfig, in the partial folder, records the settings an interrupted run used.
const embedConfig = ".embed-config"

func exists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// Resumed is how many styled images Embed took over from an interrupted run.
func (k *Key) Resumed() int { return k.resumed }

// originals is the key folder's copy of the styled samples' originals.
const originals = "originals"

// markKeyData marks dir as key material (KeyDataMarker), creating it if need be.
func markKeyData(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	return atomicfile.WriteBytes(filepath.Join(dir, KeyDataMarker), true,
		[]byte("This folder is part of a move watermark key (key.json), not a class of training images.\n"))
}

// copyFile copies the regular file src to dst (creating dst's folder).
func copyFile(src, dst string) error {
	b, err := data.ReadRegular(src, data.MaxImageFile)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	return atomicfile.WriteBytes(dst, false, b)
}

// styleFiles reads the images at paths and styles them with tr, in one batch per image size
// (folders may mix sizes); it returns the styled pixels and each image's height and width.
func styleFiles(tr *style.Transformer, paths []string) ([][]uint8, [][2]int, error) {
	bySize := map[[2]int][]int{}
	pix := make([][]uint8, len(paths))
	sizes := make([][2]int, len(paths))
	for i, p := range paths {
		img, h, w, err := data.ReadImage(p, 0)
		if err != nil {
			return nil, nil, err
		}
		pix[i], sizes[i] = img, [2]int{h, w}
		bySize[sizes[i]] = append(bySize[sizes[i]], i)
	}
	for hw, idx := range bySize {
		batch := make([][]uint8, len(idx))
		for k, i := range idx {
			batch[k] = pix[i]
		}
		res := tr.Apply(batch, hw[0], hw[1])
		for k, i := range idx {
			pix[i] = res[k]
		}
	}
	return pix, sizes, nil
}

// replaceDir moves the finished folder tmp to out, replacing an existing out only when force.
func replaceDir(tmp, out string, force bool) error {
	if _, err := os.Stat(out); err == nil {
		if !force {
			return fmt.Errorf("%s: %w", out, atomicfile.ErrExists)
		}
		old := out + ".old-" + fmt.Sprint(time.Now().UnixNano())
		if err := os.Rename(out, old); err != nil {
			return fmt.Errorf("replacing %s: %w", out, err)
		}
		if err := os.Rename(tmp, out); err != nil {
			os.Rename(old, out)
			return fmt.Errorf("replacing %s: %w", out, err)
		}
		return os.RemoveAll(old)
	}
	if err := os.Rename(tmp, out); err != nil {
		return fmt.Errorf("writing %s: %w", out, err)
	}
	return nil
}

// copyTree copies the image files under src into dst (same relative paths), skipping those
// for which skip returns true and anything that is not a regular image file.
func copyTree(src, dst string, skip func(string) bool) error {
	return filepath.WalkDir(src, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return fmt.Errorf("reading %s: %w", p, err)
		}
		rel, _ := filepath.Rel(src, p)
		if d.IsDir() {
			return os.MkdirAll(filepath.Join(dst, rel), 0o755)
		}
		if !d.Type().IsRegular() || !data.IsImageFile(p) || skip(p) {
			return nil
		}
		in, err := os.Open(p)
		if err != nil {
			return err
		}
		defer in.Close()
		out, err := os.Create(filepath.Join(dst, rel))
		if err != nil {
			return err
		}
		if _, err := io.Copy(out, in); err != nil {
			out.Close()
			return fmt.Errorf("copying %s: %w", p, err)
		}
		return out.Close()
	})
}

// LoadKey reads a key file.
func LoadKey(path string) (*Key, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading watermark key: %w", err)
	}
	var k Key
	if err := json.Unmarshal(b, &k); err != nil {
		return nil, fmt.Errorf("%s: not a watermark key: %w", path, err)
	}
	if k.Format != FormatV1 && k.Format != FormatV2 {
		return nil, fmt.Errorf("%s: unknown key format %q", path, k.Format)
	}
	if err := k.validate(); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	k.dir = filepath.Dir(path)
	return &k, nil
}

// validate checks what the key says about its samples before anything is read or trained on.
func (k *Key) validate() error {
	if len(k.Classes) == 0 {
		return errors.New("the key lists no classes")
	}
	for i, s := range k.Samples {
		if s.Label < 0 || s.Label >= len(k.Classes) {
			return fmt.Errorf("sample %d has label %d; the key has %d classes", i, s.Label, len(k.Classes))
		}
		if s.Class != k.Classes[s.Label] {
			return fmt.Errorf("sample %d is of class %q but label %d is %q", i, s.Class, s.Label, k.Classes[s.Label])
		}
		if s.Styled == "" || s.Source == "" {
			return fmt.Errorf("sample %d names no styled or original file", i)
		}
	}
	return nil
}

// ErrOutsideKey is returned for a file a key names outside the key's folder.
var ErrOutsideKey = errors.New("outside the key's folder")

// Path resolves a file the key names relative to its folder (a styled image, a control, a
// style copy, an original of a format-2 key). The file must lie inside the key's folder once
// symbolic links are resolved: a key cannot make move read elsewhere.
func (k *Key) Path(rel string) (string, error) {
	local := filepath.FromSlash(rel)
	if rel == "" || filepath.IsAbs(local) || !filepath.IsLocal(local) {
		return "", fmt.Errorf("%s: %w", rel, ErrOutsideKey)
	}
	root, err := filepath.EvalSymlinks(k.dir)
	if err != nil {
		return "", fmt.Errorf("key folder: %w", err)
	}
	p := filepath.Join(k.dir, filepath.FromSlash(rel))
	real, err := filepath.EvalSymlinks(p)
	if err != nil {
		return "", fmt.Errorf("key file %s: %w", rel, err)
	}
	if r, err := filepath.Rel(root, real); err != nil || r == ".." || strings.HasPrefix(r, ".."+string(filepath.Separator)) {
		return "", fmt.Errorf("%s: %w", rel, ErrOutsideKey)
	}
	return real, nil
}

// Original is the path of sample i's original image: the copy in the key's folder (format 2),
// or the path it was read from (format 1, relative to where embed ran).
func (k *Key) Original(i int) (string, error) {
	s := k.Samples[i].Source
	if k.Format == FormatV2 {
		return k.Path(s)
	}
	if _, err := os.Stat(s); err != nil {
		return "", fmt.Errorf("original %s: %w (a format-1 key names originals relative to the folder embed ran in: run from there, or embed again for a key that keeps its originals)", s, err)
	}
	return s, nil
}
