package watermark

import (
	"errors"
	"fmt"

	"move/internal/classifier"
	"move/internal/data"
	"move/internal/style"
	"move/internal/train"
)

// Pair is an original image and its styled version, with its versions in each of the key's
// control styles when the key has them for this sample.
type Pair struct {
	Orig, Styled []uint8
	Controls     [][]uint8 // one per control style (Key.Controls order); nil when not covered
	H, W         int
	Label        int
}

// LoadKeyPairs reads the key at path and up to n (all when n <= 0) of its pairs.
func LoadKeyPairs(path string, n int) (*Key, []Pair, error) {
	k, err := LoadKey(path)
	if err != nil {
		return nil, nil, err
	}
	pairs, err := LoadPairs(k, n)
	return k, pairs, err
}

// LoadPairs reads up to n (all when n <= 0) original/styled pairs of a key.
func LoadPairs(k *Key, n int) ([]Pair, error) {
	ctl, err := k.controlFiles()
	if err != nil {
		return nil, err
	}
	var out []Pair
	for i, s := range k.Samples {
		if n > 0 && i >= n {
			break
		}
		op, err := k.Original(i)
		if err != nil {
			return nil, err
		}
		o, h, w, err := data.ReadImage(op, 0)
		if err != nil {
			return nil, err
		}
		sp, err := k.Path(s.Styled)
		if err != nil {
			return nil, err
		}
		st, sh, sw, err := data.ReadImage(sp, 0)
		if err != nil {
			return nil, err
		}
		if sh != h || sw != w {
			return nil, fmt.Errorf("%s: styled image is %dx%d, its original %dx%d", s.Styled, sw, sh, w, h)
		}
		p := Pair{Orig: o, Styled: st, H: h, W: w, Label: s.Label}
		for _, f := range ctl[i] {
			cp, err := k.Path(f)
			if err != nil {
				return nil, err
			}
			c, ch, cw, err := data.ReadImage(cp, 0)
			if err != nil {
				return nil, err
			}
			if ch != h || cw != w {
				return nil, fmt.Errorf("%s: control image is %dx%d, its original %dx%d", f, cw, ch, w, h)
			}
			p.Controls = append(p.Controls, c)
		}
		out = append(out, p)
	}
	return out, nil
}

// StyleCheck is the result of the style-distance check.
type StyleCheck struct {
	Images int     `json:"images"`
	Before float64 `json:"distance_before"` // mean Gram distance of the originals
	After  float64 `json:"distance_after"`  // mean Gram distance of the styled images
	Ratio  float64 `json:"ratio"`
	Pass   bool    `json:"pass"` // ratio <= 0.5
}

// CheckStyle measures the Gram-matrix distance to the style image, in a random feature network
// other than the one the transfer used, before and after styling.
func CheckStyle(pairs []Pair, stylePix []uint8, sh, sw int, opt style.Options) (StyleCheck, error) {
	m, err := style.NewMeter(stylePix, sh, sw, opt, opt.Seed+1000)
	if err != nil {
		return StyleCheck{}, err
	}
	var c StyleCheck
	for _, p := range pairs {
		b := m.Distance([][]uint8{p.Orig}, p.H, p.W)[0]
		a := m.Distance([][]uint8{p.Styled}, p.H, p.W)[0]
		c.Before += b
		c.After += a
		c.Images++
	}
	if c.Images == 0 {
		return c, fmt.Errorf("no styled images to check")
	}
	c.Before /= float64(c.Images)
	c.After /= float64(c.Images)
	c.Ratio = c.After / c.Before
	c.Pass = c.Ratio <= 0.5
	return c, nil
}

// ContactSheet lays out pairs in rows of up to perRow
// pairs, each pair original then styled, magnified by scale (nearest neighbour), on a white
// background with 2-pixel gaps. All pairs must share one size.
func ContactSheet(pairs []Pair, perRow, scale int) (pix []uint8, h, w int) {
	if len(pairs) == 0 {
		return nil, 0, 0
	}
	ph, pw := pairs[0].H*scale, pairs[0].W*scale
	const gap = 2
	rows := (len(pairs) + perRow - 1) / perRow
	cols := min(perRow, len(pairs)) * 2
	w = cols*(pw+gap) + gap
	h = rows*(ph+gap) + gap
	pix = make([]uint8, h*w*3)
	for i := range pix {
		pix[i] = 255
	}
	put := func(img []uint8, ih, iw, x0, y0 int) {
		for y := range ih * scale {
			for x := range iw * scale {
				s := ((y/scale)*iw + x/scale) * 3
				d := ((y0+y)*w + x0 + x) * 3
				copy(pix[d:d+3], img[s:s+3])
			}
		}
	}
	for i, p := range pairs {
		r, c := i/perRow, i%perRow
		y0 := gap + r*(ph+gap)
		x0 := gap + 2*c*(pw+gap)
		put(p.Orig, p.H, p.W, x0, y0)
		put(p.Styled, p.H, p.W, x0+pw+gap, y0)
	}
	return pix, h, w
}

// ContentCheck is the result of the content check: a classifier trained on clean data still
// recognises the styled images (their content survives the styling).
type ContentCheck struct {
	Images int     `json:"images"`
	Clean  float64 `json:"clean_accuracy"`
	Styled float64 `json:"styled_accuracy"`
	Kept   float64 `json:"kept"`
	Pass   bool    `json:"pass"` // kept >= 0.5
}

// CheckContent styles n test images (a seeded sample) with apply (a Transformer's or a
// Stylizer's Apply) and compares clean classifier m's accuracy on them with its accuracy on
// the originals.
func CheckContent(m classifier.Model, test *data.Set, apply func(imgs [][]uint8, h, w int) [][]uint8, n int, seed uint64) (ContentCheck, error) {
	var r ContentCheck
	if test.Len() == 0 {
		return r, errors.New("content check: no test images")
	}
	idx, _ := data.Split(test.Len(), min(n, test.Len()), seed)
	sub := test.Subset(idx)
	imgs := make([][]uint8, sub.Len())
	for i := range imgs {
		imgs[i] = sub.Image(i)
	}
	styled := apply(imgs, sub.H, sub.W)
	ss := &data.Set{Classes: sub.Classes, H: sub.H, W: sub.W, Labels: sub.Labels}
	for _, p := range styled {
		ss.Pixels = append(ss.Pixels, p...)
	}
	r.Images = sub.Len()
	r.Clean = train.ArgmaxAgreement(m.Logits(sub), sub.Labels)
	r.Styled = train.ArgmaxAgreement(m.Logits(ss), ss.Labels)
	r.Kept = r.Styled / r.Clean
	r.Pass = r.Kept >= 0.5
	return r, nil
}
