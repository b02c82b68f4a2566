package style

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"time"

	"move/internal/modelfile"
	"move/internal/nn"
)

// StylizerFormat is the format of a saved Stylizer (a safetensors file).
const StylizerFormat = "move-stylizer/1"

// FeedOptions shape and train a Stylizer. The zero value is not usable; start from
// DefaultFeed.
type FeedOptions struct {
	Width  int     `json:"width"`  // channels at full resolution (2x and 4x after each halving)
	Blocks int     `json:"blocks"` // residual blocks at a quarter of the resolution
	Steps  int     `json:"steps"`  // Adam steps of training
	Batch  int     `json:"batch"`  // training crops per step
	Crop   int     `json:"crop"`   // side of the training crops (a multiple of 4)
	LR     float64 `json:"lr"`     // Adam learning rate
	Seed   uint64  `json:"seed"`   // initial weights and crops
}

// DefaultFeed trains a 16-channel, 3-block network for 300 steps of 8 random 32x32 crops.
func DefaultFeed() FeedOptions {
	return FeedOptions{Width: 16, Blocks: 3, Steps: 300, Batch: 8, Crop: 32, LR: 0.002, Seed: 1}
}

// Validate reports the first problem with the options.
func (o FeedOptions) Validate() error {
	switch {
	case o.Width < 1 || o.Blocks < 0:
		return fmt.Errorf("stylizer of width %d with %d blocks: want a positive width", o.Width, o.Blocks)
	case o.Steps < 1 || o.Batch < 1:
		return fmt.Errorf("stylizer training of %d steps of %d crops: want at least 1 of each", o.Steps, o.Batch)
	case o.Crop < 8 || o.Crop%4 != 0:
		return fmt.Errorf("stylizer training crops of %d pixels: want a multiple of 4, at least 8", o.Crop)
	case !(o.LR > 0):
		return fmt.Errorf("stylizer learning rate must be positive, got %g", o.LR)
	}
	return nil
}

// Stylizer is a feed-forward style network in the manner of Johnson et al. (ECCV 2016):
// trained once per style image with the Transformer's own weight-free losses (the content and
// style terms in the fixed random feature network), it then styles an image with one forward
// pass instead of the Transformer's Steps optimisation steps. It is fully convolutional:
// two stride-2 convolutions, residual blocks, two nearest-neighbour upsamplings, and an output
// added to the input image (the last layer starts at zero, so training starts from the
// identity). Images of any size are styled (padded to a multiple of 4 by repeating the edge).
type Stylizer struct {
	Feed  FeedOptions
	Style Options // the transfer's options: the losses it was trained with and the post-processing

	store            *nn.Store
	in, down1, down2 *nn.Conv
	res              [][2]*nn.Conv
	up1, up2, out    *nn.Conv
}

func newStylizer(feed FeedOptions, st Options) *Stylizer {
	rng := rand.New(rand.NewPCG(feed.Seed, 0x66656564)) // "feed"
	s := &Stylizer{Feed: feed, Style: st, store: nn.NewStore()}
	w := feed.Width
	s.in = nn.NewConv(s.store, "in", 3, w, 3, 1, 1, true, rng)
	s.down1 = nn.NewConv(s.store, "down1", w, 2*w, 3, 2, 1, true, rng)
	s.down2 = nn.NewConv(s.store, "down2", 2*w, 4*w, 3, 2, 1, true, rng)
	for i := range feed.Blocks {
		a := nn.NewConv(s.store, fmt.Sprintf("res%d.a", i), 4*w, 4*w, 3, 1, 1, true, rng)
		b := nn.NewConv(s.store, fmt.Sprintf("res%d.b", i), 4*w, 4*w, 3, 1, 1, true, rng)
		nn.Fill(b.W.Value, 0) // each block starts as the identity
		s.res = append(s.res, [2]*nn.Conv{a, b})
	}
	s.up1 = nn.NewConv(s.store, "up1", 4*w, 2*w, 3, 1, 1, true, rng)
	s.up2 = nn.NewConv(s.store, "up2", 2*w, w, 3, 1, 1, true, rng)
	s.out = nn.NewConv(s.store, "out", w, 3, 3, 1, 1, true, rng)
	nn.Fill(s.out.W.Value, 0)
	return s
}

// Forward styles x (NHWC, pixels in [0,1], height and width multiples of 4).
func (s *Stylizer) Forward(tp *nn.Tape, x *nn.Var) *nn.Var {
	h := nn.ReLU(tp, s.in.Apply(tp, x))
	h = nn.ReLU(tp, s.down1.Apply(tp, h))
	h = nn.ReLU(tp, s.down2.Apply(tp, h))
	for _, b := range s.res {
		h = nn.Add(tp, h, b[1].Apply(tp, nn.ReLU(tp, b[0].Apply(tp, h))))
	}
	h = nn.ReLU(tp, s.up1.Apply(tp, nn.UpsampleNearest(tp, h, 2)))
	h = nn.ReLU(tp, s.up2.Apply(tp, nn.UpsampleNearest(tp, h, 2)))
	return nn.Clip(tp, nn.Add(tp, x, s.out.Apply(tp, h)), 0, 1)
}

// Image is an RGB image and its size.
type Image struct {
	Pix  []uint8
	H, W int
}

// TrainStylizer trains a stylizer for t's style image on random Crop x Crop crops of imgs
// (the owner's images; smaller ones shrink the crop to the largest multiple of 4 all of them
// hold), minimising t's loss: the content
// term on the crop's own features plus Strength times the style terms. progress, when not
// nil, is called after each step with the step, the loss and the time so far.
func TrainStylizer(t *Transformer, imgs []Image, feed FeedOptions, progress func(step int, loss float64, elapsed time.Duration)) (*Stylizer, error) {
	if err := feed.Validate(); err != nil {
		return nil, err
	}
	if len(imgs) == 0 {
		return nil, errors.New("no training images for the stylizer")
	}
	c := feed.Crop
	for _, im := range imgs {
		if len(im.Pix) != im.H*im.W*3 {
			return nil, fmt.Errorf("training image of %d bytes for %dx%d RGB", len(im.Pix), im.W, im.H)
		}
		c = min(c, im.H/4*4, im.W/4*4) // smaller images: the largest crop all of them hold
	}
	if c < 8 {
		return nil, fmt.Errorf("the stylizer trains on crops of at least 8 pixels; the smallest of its %d training images is smaller", len(imgs))
	}
	usable := imgs
	s := newStylizer(feed, t.opt)
	rng := rand.New(rand.NewPCG(feed.Seed, 0x63726f70)) // "crop"
	opt := nn.NewAdam(0)
	tp := nn.NewTape(true)
	targets := t.styleTargets(feed.Batch)
	start := time.Now()
	for step := range feed.Steps {
		batch := make([][]uint8, feed.Batch)
		for b := range batch {
			im := usable[rng.IntN(len(usable))]
			y0, x0 := rng.IntN(im.H-c+1), rng.IntN(im.W-c+1)
			p := make([]uint8, c*c*3)
			for y := range c {
				copy(p[y*c*3:(y+1)*c*3], im.Pix[((y0+y)*im.W+x0)*3:((y0+y)*im.W+x0+c)*3])
			}
			if rng.IntN(2) == 1 {
				p = flip(p, c, c)
			}
			batch[b] = p
		}
		x := nn.Const(toTensor(batch, c, c))
		ctarget, cnorm := t.contentTarget(x)
		s.store.ZeroGrad()
		loss := t.loss(tp, s.Forward(tp, x), ctarget, cnorm, targets)
		lv := float64(loss.Data()[0])
		if math.IsNaN(lv) || math.IsInf(lv, 0) {
			return nil, fmt.Errorf("stylizer training diverged at step %d (loss %g): lower the learning rate", step+1, lv)
		}
		if err := tp.Backward(loss); err != nil {
			return nil, err
		}
		tp.Reset()
		opt.Step(s.store.Params(), float32(feed.LR))
		if progress != nil {
			progress(step+1, lv, time.Since(start))
		}
	}
	return s, nil
}

// flip mirrors an image left to right.
func flip(p []uint8, h, w int) []uint8 {
	out := make([]uint8, len(p))
	for y := range h {
		for x := range w {
			copy(out[(y*w+x)*3:(y*w+x)*3+3], p[(y*w+w-1-x)*3:(y*w+w-1-x)*3+3])
		}
	}
	return out
}

// Apply styles RGB images of size h x w, Batch at a time, with the transfer's post-processing
// (median filter, kept colours).
func (s *Stylizer) Apply(imgs [][]uint8, h, w int) [][]uint8 {
	ph, pw := (h+3)/4*4, (w+3)/4*4
	out := make([][]uint8, 0, len(imgs))
	bs := max(1, s.Style.Batch)
	for lo := 0; lo < len(imgs); lo += bs {
		part := imgs[lo:min(len(imgs), lo+bs)]
		padded := make([][]uint8, len(part))
		for i, p := range part {
			padded[i] = padEdge(p, h, w, ph, pw)
		}
		y := s.Forward(nil, nn.Const(toTensor(padded, ph, pw)))
		for i := range part {
			p := make([]uint8, h*w*3)
			for r := range h {
				for c := range w * 3 {
					p[r*w*3+c] = uint8(math.Round(255 * float64(y.Data()[(i*ph+r)*pw*3+c])))
				}
			}
			out = append(out, postprocess(s.Style, part[i], p, h, w))
		}
	}
	return out
}

// padEdge pads an h x w image to ph x pw by repeating its last row and column.
func padEdge(p []uint8, h, w, ph, pw int) []uint8 {
	if ph == h && pw == w {
		return p
	}
	out := make([]uint8, ph*pw*3)
	for y := range ph {
		sy := min(y, h-1)
		for x := range pw {
			sx := min(x, w-1)
			copy(out[(y*pw+x)*3:(y*pw+x)*3+3], p[(sy*w+sx)*3:(sy*w+sx)*3+3])
		}
	}
	return out
}

// Save writes the stylizer (weights and options) as a safetensors file, atomically; an
// existing file is replaced only with overwrite.
func (s *Stylizer) Save(path string, overwrite bool) error {
	fb, _ := json.Marshal(s.Feed)
	sb, _ := json.Marshal(s.Style)
	return modelfile.SaveTensors(path, s.store.Map(), map[string]string{"format": StylizerFormat, "feed": string(fb), "style": string(sb)}, overwrite)
}

// LoadStylizer reads a stylizer written by Save.
func LoadStylizer(path string) (*Stylizer, error) {
	ts, meta, err := modelfile.LoadTensors(path)
	if err != nil {
		return nil, err
	}
	if meta["format"] != StylizerFormat {
		return nil, fmt.Errorf("%s: not a stylizer (format %q, want %q)", path, meta["format"], StylizerFormat)
	}
	var feed FeedOptions
	var st Options
	if err := errors.Join(json.Unmarshal([]byte(meta["feed"]), &feed), json.Unmarshal([]byte(meta["style"]), &st)); err != nil {
		return nil, fmt.Errorf("%s: stylizer options: %w", path, err)
	}
	if err := errors.Join(feed.Validate(), st.Validate()); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	s := newStylizer(feed, st)
	if err := s.store.Load(ts); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return s, nil
}

// Params is the number of trained weights.
func (s *Stylizer) Params() int { return s.store.NumParams() }
