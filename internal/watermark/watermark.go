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
	// Patch is set when Method is MethodPatch: the style image, shrunk to a patch, was stamped
	// instead of transferred.
	Patch *Patch `json:"patch,omitempty"`
	// Stylizer names the trained feed-forward network, relative to the key file, when Method
	// is MethodFeedForward, and Feed how it was trained.
	Stylizer string             `json:"stylizer,omitempty"`
	Feed     *style.FeedOptions `json:"feed,omitempty"`

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

// Method names the transfer implemented by package style: each image optimised.
const Method = "random-feature-gram"

// MethodFeedForward names the same transfer by a feed-forward network (style.Stylizer)
// trained once on some of the chosen images with the same losses, then applied to each.
const MethodFeedForward = "feedforward-random-feature-gram"

// StylizerFile is the trained stylizer's file beside the key.
const StylizerFile = "stylizer.safetensors"

// Options for Embed.
type Options struct {
	Data, StyleImage, Out string
	Rate                  float64
	Seed                  uint64
	Style                 style.Options
	Force                 bool
	Command               string
	// Progress follows the styling: done of total images this run styles (an interrupted
	// run's finished images, which it resumes from, are counted in neither) in elapsed time.
	Progress func(done, total int, elapsed time.Duration)
	// Shards > 1 splits the styling over that many runs: this run (Shard, from 0) styles only
	// its share into Out (ShardDir names it), and Merge joins the shards. Shard i styles the
	// chunks i, i+n, i+2n, ... of the sorted selection (a stable assignment of every image), so
	// shards never overlap and any one can be rerun alone.
	Shard, Shards int
	// Created is the key's creation time (RFC 3339); empty: now. Fixed, it makes a key
	// reproducible byte for byte.
	Created string
	// Patch > 0 makes the patch variant (MethodPatch): the style image is shrunk to Patch x
	// Patch pixels and stamped 1 pixel from each chosen image's bottom-right corner instead of
	// transferred (Style is then unused).
	Patch int
	// FeedForward styles with a feed-forward network (MethodFeedForward) trained with Feed on
	// up to FeedImages of the chosen images (evenly spread over them; 0: 256), instead of
	// optimising each image. StylizerProgress, when not nil, follows its training.
	FeedForward      bool
	Feed             style.FeedOptions
	FeedImages       int
	StylizerProgress func(step, steps int, loss float64, elapsed time.Duration)
}

// chunk is how many images are styled together. An image's styling depends slightly on the
// others of its batch (the content loss is normalised over the batch), so resuming and
// sharding work in whole chunks of the sorted selection: the result is the same as one
// uninterrupted, unsharded run's, byte for byte.
const chunk = 64

// ShardDir is the folder of shard i of n of the output out.
func ShardDir(out string, i, n int) string {
	return fmt.Sprintf("%s.shard-%d-of-%d", filepath.Clean(out), i, n)
}

// ShardManifest describes what one shard styled (shard.json in its folder).
type ShardManifest struct {
	Format  string          `json:"format"` // "move-embed-shard/1"
	Shard   int             `json:"shard"`
	Shards  int             `json:"shards"`
	Config  json.RawMessage `json:"config"` // the settings every shard must share
	Samples []Sample        `json:"samples"`
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
	p, err := makePlan(o)
	if err != nil {
		return nil, err
	}
	return p.embed(ctx)
}

// plan is what an embedding run styles, worked out from its options and the data.
type plan struct {
	o          Options
	styleBytes []byte
	tr         *style.Transformer // style transfer (by optimisation, or by ff once trained), or
	patch      *Patch             // the patch variant
	ff         *style.Stylizer
	split      string
	classes    []string
	jobs       []job
	chosen     map[string]bool
	conf       []byte // the settings, as recorded in partial folders and shard manifests
}

type job struct {
	src   string
	label int
}

// origin is the job's image path relative to the data root.
func (p *plan) origin(j job) string {
	o, _ := filepath.Rel(p.o.Data, j.src)
	return o
}

func makePlan(o Options) (*plan, error) {
	if o.Shards < 0 || (o.Shards > 0 && (o.Shard < 0 || o.Shard >= o.Shards)) {
		return nil, fmt.Errorf("shard %d of %d: the shard must be in [0, %d)", o.Shard, o.Shards, o.Shards)
	}
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
	var tr *style.Transformer
	var patch *Patch
	if o.FeedForward && o.Patch > 0 {
		return nil, errors.New("the patch variant stamps: it has no feed-forward stylizer")
	}
	if o.FeedForward && o.Shards > 1 {
		return nil, errors.New("a feed-forward stylizer is trained once: style with it in one run (no shards)")
	}
	if o.FeedForward {
		if o.FeedImages == 0 {
			o.FeedImages = 256
		}
		if err := o.Feed.Validate(); err != nil {
			return nil, err
		}
		if o.FeedImages < 1 {
			return nil, fmt.Errorf("the stylizer trains on %d images: want at least 1", o.FeedImages)
		}
	}
	if o.Patch > 0 {
		pt, err := NewPatch(spix, sh, sw, o.Patch, 1)
		if err != nil {
			return nil, fmt.Errorf("style image %s: %w", o.StyleImage, err)
		}
		patch = &pt
	} else if tr, err = style.New(spix, sh, sw, o.Style); err != nil {
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
	absData, _ := filepath.Abs(o.Data)
	settings := map[string]any{"style_sha256": fmt.Sprintf("%x", sha256.Sum256(styleBytes)), "rate": o.Rate, "seed": o.Seed,
		"params": o.Style, "data": absData, "method": Method, "format": FormatV2}
	if patch != nil {
		settings["method"], settings["patch"] = MethodPatch, patch
	}
	if o.FeedForward {
		settings["method"], settings["feed"], settings["feed_images"] = MethodFeedForward, o.Feed, o.FeedImages
	}
	conf, _ := json.Marshal(settings)
	return &plan{o: o, styleBytes: styleBytes, tr: tr, patch: patch, split: split, classes: classes, jobs: jobs, chosen: chosen, conf: conf}, nil
}

// newKey is the key of the plan, without samples.
func (p *plan) newKey() *Key {
	o := p.o
	created := o.Created
	if created == "" {
		created = time.Now().UTC().Format(time.RFC3339)
	}
	key := &Key{Format: FormatV2, Version: buildinfo.Version, Command: o.Command, Created: created, Rate: o.Rate, Seed: o.Seed,
		Method: Method, Params: o.Style, Source: o.Data, Output: o.Out, Split: p.split, Classes: p.classes}
	if p.patch != nil {
		key.Method, key.Patch = MethodPatch, p.patch
	}
	if o.FeedForward {
		feed := o.Feed
		key.Method, key.Stylizer, key.Feed = MethodFeedForward, StylizerFile, &feed
	}
	sum := sha256.Sum256(p.styleBytes)
	key.Style = StyleRef{File: "style" + strings.ToLower(filepath.Ext(o.StyleImage)), Origin: filepath.Base(o.StyleImage), SHA256: hex.EncodeToString(sum[:])}
	return key
}

// sample is the key's record of job j.
func (p *plan) sample(j job) Sample {
	origin := p.origin(j)
	rel := strings.TrimSuffix(origin, filepath.Ext(origin)) + ".png"
	return Sample{Source: filepath.ToSlash(filepath.Join(originals, origin)), Origin: filepath.ToSlash(origin), Class: p.classes[j.label],
		Label: j.label, Styled: filepath.ToSlash(rel)}
}

// finish writes the key material into the built folder tmp and moves it to the output.
func (p *plan) finish(tmp string, key *Key) error {
	if err := markKeyData(filepath.Join(tmp, originals)); err != nil {
		return err
	}
	if err := atomicfile.WriteBytes(filepath.Join(tmp, key.Style.File), false, p.styleBytes); err != nil {
		return err
	}
	kb, _ := json.MarshalIndent(key, "", "  ")
	if err := atomicfile.WriteBytes(filepath.Join(tmp, "key.json"), false, append(kb, '\n')); err != nil {
		return err
	}
	if err := os.Chmod(tmp, 0o755); err != nil {
		return err
	}
	return replaceDir(tmp, p.o.Out, p.o.Force)
}

// embed styles the plan's images (this shard's share, when sharded).
func (p *plan) embed(ctx context.Context) (*Key, error) {
	o, jobs, chosen := p.o, p.jobs, p.chosen
	sharded := o.Shards > 1
	conf := p.conf
	mine := func(chunkIndex int) bool { return !sharded || chunkIndex%o.Shards == o.Shard }
	total := 0
	for s, ci := 0, 0; s < len(jobs); s, ci = s+chunk, ci+1 {
		if mine(ci) {
			total += min(len(jobs), s+chunk) - s
		}
	}
	if sharded {
		conf = append(append([]byte(nil), conf...), fmt.Sprintf(" shard %d of %d", o.Shard, o.Shards)...)
	}
	parent := filepath.Dir(filepath.Clean(o.Out))
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return nil, err
	}
	// The output is built in OUT's partial folder, which an interrupted run leaves behind and
	// the same command resumes from (the images already styled are kept); a run with other
	// settings starts it afresh.
	tmp := filepath.Join(parent, "."+filepath.Base(o.Out)+".partial")
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
	finished := false
	defer func() {
		// A run that failed on its input leaves nothing; an interrupted one (the context
		// ended, or the process was killed) leaves its partial folder to resume from.
		if !finished && ctx.Err() == nil {
			os.RemoveAll(tmp)
		}
	}()
	if stale, _ := filepath.Glob(filepath.Join(parent, "."+filepath.Base(o.Out)+".tmp-*")); len(stale) > 0 {
		for _, d := range stale { // left by versions that could not resume
			os.RemoveAll(d)
		}
	}
	// Copy everything that is not styled: the other splits and the untouched images (a shard
	// holds only its styled images; the merge copies the rest).
	if !sharded {
		if err := copyTree(o.Data, tmp, func(p string) bool { return chosen[p] }); err != nil {
			return nil, err
		}
	}
	if o.FeedForward {
		if err := p.stylizer(filepath.Join(tmp, StylizerFile)); err != nil {
			return nil, err
		}
	}
	key := p.newKey()
	var start time.Time // when this run styled its first chunk
	done := 0
	for s, ci := 0, 0; s < len(jobs); s, ci = s+chunk, ci+1 {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if !mine(ci) {
			continue
		}
		part := jobs[s:min(len(jobs), s+chunk)]
		// A chunk is styled whole (an image's styling depends on the batch it is styled in):
		// an interrupted run's chunk counts only when all of it was written.
		samples := make([]Sample, len(part))
		written := true
		for i, jb := range part {
			samples[i] = p.sample(jb)
			written = written && exists(filepath.Join(tmp, filepath.FromSlash(samples[i].Styled))) && exists(filepath.Join(tmp, filepath.FromSlash(samples[i].Source)))
		}
		if written {
			resumed += len(part)
		} else {
			if start.IsZero() {
				start = time.Now()
			}
			paths := make([]string, len(part))
			for i, jb := range part {
				paths[i] = jb.src
			}
			styled, sizes, err := p.transform(paths)
			if err != nil {
				return nil, err
			}
			for i, sm := range samples {
				dst := filepath.Join(tmp, filepath.FromSlash(sm.Styled))
				if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
					return nil, err
				}
				if err := data.WritePNG(dst, styled[i], sizes[i][0], sizes[i][1], true); err != nil {
					return nil, err
				}
				if err := copyFile(part[i].src, filepath.Join(tmp, filepath.FromSlash(sm.Source))); err != nil {
					return nil, err
				}
			}
		}
		key.Samples = append(key.Samples, samples...)
		done += len(part)
		if o.Progress != nil && !written {
			// Finished chunks of an interrupted run come first (they were written in order)
			// and are not counted again: the rate and the ETA are this run's.
			o.Progress(done-resumed, total-resumed, time.Since(start))
		}
	}
	if err := os.Remove(filepath.Join(tmp, embedConfig)); err != nil {
		return nil, err
	}
	if sharded {
		m := ShardManifest{Format: shardFormat, Shard: o.Shard, Shards: o.Shards, Config: p.conf, Samples: key.Samples}
		mb, _ := json.MarshalIndent(m, "", "  ")
		if err := atomicfile.WriteBytes(filepath.Join(tmp, shardFile), false, append(mb, '\n')); err != nil {
			return nil, err
		}
		if err := os.Chmod(tmp, 0o755); err != nil {
			return nil, err
		}
		if err := replaceDir(tmp, o.Out, o.Force); err != nil {
			return nil, err
		}
	} else if err := p.finish(tmp, key); err != nil {
		return nil, err
	}
	finished = true
	key.dir, key.resumed = o.Out, resumed
	return key, nil
}

// The shard manifest: its file name in a shard's folder and its format.
const (
	shardFile   = "shard.json"
	shardFormat = "move-embed-shard/1"
)

// Merge joins the n = o.Shards shards of o.Out (ShardDir) into the watermarked folder and key
// that one unsharded Embed with the same options writes, byte for byte. A missing shard, one
// made with other settings, or an image styled by two shards (or by none) is refused.
func Merge(ctx context.Context, o Options) (*Key, error) {
	n := o.Shards
	if n < 2 {
		return nil, fmt.Errorf("merging %d shards: give the number of shards (at least 2)", n)
	}
	o.Shards, o.Shard = 0, 0
	p, err := makePlan(o)
	if err != nil {
		return nil, err
	}
	from := map[string]string{} // styled path -> the shard folder that holds it
	for i := range n {
		dir := ShardDir(o.Out, i, n)
		b, err := data.ReadRegular(filepath.Join(dir, shardFile), 64<<20)
		if err != nil {
			return nil, fmt.Errorf("shard %d of %d is missing or unfinished (%s): %w", i, n, dir, err)
		}
		var m ShardManifest
		if err := json.Unmarshal(b, &m); err != nil || m.Format != shardFormat {
			return nil, fmt.Errorf("%s: not a shard manifest", filepath.Join(dir, shardFile))
		}
		if m.Shard != i || m.Shards != n {
			return nil, fmt.Errorf("%s holds shard %d of %d, not %d of %d (a duplicated or renamed shard)", dir, m.Shard, m.Shards, i, n)
		}
		var got bytes.Buffer
		if json.Compact(&got, m.Config) != nil || !bytes.Equal(got.Bytes(), p.conf) {
			return nil, fmt.Errorf("shard %d (%s) was made with other settings (style, rate, seed, parameters or data) than this merge", i, dir)
		}
		for _, sm := range m.Samples {
			if prev, ok := from[sm.Styled]; ok {
				return nil, fmt.Errorf("%s was styled by two shards (%s and %s)", sm.Styled, prev, dir)
			}
			from[sm.Styled] = dir
		}
	}
	key := p.newKey()
	for _, j := range p.jobs {
		sm := p.sample(j)
		if _, ok := from[sm.Styled]; !ok {
			return nil, fmt.Errorf("no shard styled %s", sm.Origin)
		}
		key.Samples = append(key.Samples, sm)
	}
	if len(from) != len(key.Samples) {
		return nil, fmt.Errorf("the shards styled %d images, the plan has %d", len(from), len(key.Samples))
	}
	parent := filepath.Dir(filepath.Clean(o.Out))
	tmp, err := os.MkdirTemp(parent, "."+filepath.Base(o.Out)+".merge-")
	if err != nil {
		return nil, err
	}
	ok := false
	defer func() {
		if !ok {
			os.RemoveAll(tmp)
		}
	}()
	if err := copyTree(o.Data, tmp, func(q string) bool { return p.chosen[q] }); err != nil {
		return nil, err
	}
	for _, sm := range key.Samples {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		dir := from[sm.Styled]
		for _, rel := range []string{sm.Styled, sm.Source} {
			if err := copyFile(filepath.Join(dir, filepath.FromSlash(rel)), filepath.Join(tmp, filepath.FromSlash(rel))); err != nil {
				return nil, fmt.Errorf("merging %s: %w", dir, err)
			}
		}
	}
	if err := p.finish(tmp, key); err != nil {
		return nil, err
	}
	ok = true
	key.dir = o.Out
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

// stylizer loads the feed-forward stylizer an interrupted run trained into file, or trains
// it on up to FeedImages of the chosen images (evenly spread over the sorted selection) and
// saves it there.
func (p *plan) stylizer(file string) error {
	if s, err := style.LoadStylizer(file); err == nil {
		p.ff = s
		return nil
	}
	paths := make([]string, len(p.jobs))
	for i, j := range p.jobs {
		paths[i] = j.src
	}
	var progress func(int, float64, time.Duration)
	if f := p.o.StylizerProgress; f != nil {
		progress = func(step int, loss float64, el time.Duration) { f(step, p.o.Feed.Steps, loss, el) }
	}
	s, err := trainStylizer(p.tr, paths, p.o.FeedImages, p.o.Feed, progress)
	if err != nil {
		return err
	}
	if err := s.Save(file, true); err != nil {
		return err
	}
	p.ff = s
	return nil
}

// trainStylizer trains tr's stylizer on up to n of the images at paths, evenly spread over
// them.
func trainStylizer(tr *style.Transformer, paths []string, n int, feed style.FeedOptions, progress func(int, float64, time.Duration)) (*style.Stylizer, error) {
	n = min(n, len(paths))
	imgs := make([]style.Image, 0, n)
	for i := range n {
		pix, h, w, err := data.ReadImage(paths[i*len(paths)/n], 0)
		if err != nil {
			return nil, err
		}
		imgs = append(imgs, style.Image{Pix: pix, H: h, W: w})
	}
	s, err := style.TrainStylizer(tr, imgs, feed, progress)
	if err != nil {
		return nil, fmt.Errorf("training the stylizer: %w", err)
	}
	return s, nil
}

// transform reads the images at paths and transforms them: stamps the patch (the patch
// variant), or styles them (with the stylizer, or by optimisation).
func (p *plan) transform(paths []string) ([][]uint8, [][2]int, error) {
	switch {
	case p.ff != nil:
		return styleFiles(p.ff.Apply, paths)
	case p.patch == nil:
		return styleFiles(p.tr.Apply, paths)
	}
	pix := make([][]uint8, len(paths))
	sizes := make([][2]int, len(paths))
	for i, f := range paths {
		img, h, w, err := data.ReadImage(f, 0)
		if err != nil {
			return nil, nil, err
		}
		sizes[i] = [2]int{h, w}
		if pix[i], err = p.patch.Stamp(img, h, w); err != nil {
			return nil, nil, fmt.Errorf("%s: %w", f, err)
		}
	}
	return pix, sizes, nil
}

// styleFiles reads the images at paths and styles them with apply, in one batch per image size
// (folders may mix sizes); it returns the styled pixels and each image's height and width.
func styleFiles(apply func(imgs [][]uint8, h, w int) [][]uint8, paths []string) ([][]uint8, [][2]int, error) {
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
		res := apply(batch, hw[0], hw[1])
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
