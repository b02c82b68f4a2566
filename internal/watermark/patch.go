package watermark

import (
	"fmt"
)

// MethodPatch names the patch-based variant of the external feature (the MOVE paper's
// Table 9): instead of transferring a style, a small square patch is stamped on each chosen
// training image, labels unchanged. With a white image it is the white square BadNets stamps,
// without BadNets' relabelling: an external feature, not a backdoor.
const MethodPatch = "patch"

// Patch is the stamp of the patch variant: Size x Size RGB pixels placed Margin pixels from an
// image's bottom-right corner.
type Patch struct {
	Size   int     `json:"size"`
	Margin int     `json:"margin"`
	Pixels []uint8 `json:"-"` // Size*Size*3, row-major RGB
}

// PatchSize is the patch side for images of side pixels, as BadNets' default trigger: a tenth
// of the side, at least 2 pixels (3 on 32-pixel images), and its margin (1 pixel per 32).
func PatchSize(side int) (size, margin int) {
	return max(2, (side+5)/10), max(1, side/32)
}

// WhitePatch is the paper's patch variant for images of side pixels: a white square of
// PatchSize.
func WhitePatch(side int) Patch { return SolidPatch(side, 255) }

// SolidPatch is a square of PatchSize in grey level v (255: WhitePatch).
func SolidPatch(side int, v uint8) Patch {
	size, margin := PatchSize(side)
	pix := make([]uint8, size*size*3)
	for i := range pix {
		pix[i] = v
	}
	return Patch{Size: size, Margin: margin, Pixels: pix}
}

// NewPatch shrinks (or grows) an h x w RGB image to size x size by averaging the source pixels
// each patch pixel covers (nearest pixel when growing).
func NewPatch(pix []uint8, h, w, size, margin int) (Patch, error) {
	if size < 1 || margin < 0 {
		return Patch{}, fmt.Errorf("patch of %d pixels, %d from the corner: want a positive size and a margin of at least 0", size, margin)
	}
	if h < 1 || w < 1 || len(pix) != h*w*3 {
		return Patch{}, fmt.Errorf("patch image: %d bytes for %dx%d RGB", len(pix), w, h)
	}
	out := make([]uint8, size*size*3)
	for y := range size {
		y0, y1 := y*h/size, max((y+1)*h/size, y*h/size+1)
		for x := range size {
			x0, x1 := x*w/size, max((x+1)*w/size, x*w/size+1)
			for c := range 3 {
				sum, n := 0, 0
				for sy := y0; sy < y1; sy++ {
					for sx := x0; sx < x1; sx++ {
						sum += int(pix[(sy*w+sx)*3+c])
						n++
					}
				}
				out[(y*size+x)*3+c] = uint8((sum + n/2) / n)
			}
		}
	}
	return Patch{Size: size, Margin: margin, Pixels: out}, nil
}

// Stamp returns a copy of an h x w RGB image with the patch on it.
func (p Patch) Stamp(img []uint8, h, w int) ([]uint8, error) {
	if len(img) != h*w*3 {
		return nil, fmt.Errorf("image: %d bytes for %dx%d RGB", len(img), w, h)
	}
	if p.Size+p.Margin > min(h, w) {
		return nil, fmt.Errorf("a %d-pixel patch %d pixels from the corner does not fit a %dx%d image", p.Size, p.Margin, w, h)
	}
	out := append([]uint8(nil), img...)
	y0, x0 := h-p.Margin-p.Size, w-p.Margin-p.Size
	for dy := range p.Size {
		copy(out[((y0+dy)*w+x0)*3:((y0+dy)*w+x0+p.Size)*3], p.Pixels[dy*p.Size*3:(dy+1)*p.Size*3])
	}
	return out, nil
}

// PatchPairs returns the key's pairs with the patch in place of the style: each original
// stamped with p, the transformed images of the patch variant. A pair with control versions
// gets as many, stamped with the controls patches in turn instead of styled: a contrast must
// be of the transform's own kind (a style transfer against a barely changed image would
// credit any better classifier with the owner's "feature").
func PatchPairs(pairs []Pair, p Patch, controls ...Patch) ([]Pair, error) {
	out := make([]Pair, len(pairs))
	for i, q := range pairs {
		s, err := p.Stamp(q.Orig, q.H, q.W)
		if err != nil {
			return nil, fmt.Errorf("key sample %d: %w", i, err)
		}
		q.Styled = s
		if len(q.Controls) > 0 {
			if len(controls) == 0 {
				return nil, fmt.Errorf("key sample %d has %d control versions and no control patch was given", i, len(q.Controls))
			}
			cs := make([][]uint8, len(q.Controls))
			for j := range cs {
				if cs[j], err = controls[j%len(controls)].Stamp(q.Orig, q.H, q.W); err != nil {
					return nil, fmt.Errorf("key sample %d: %w", i, err)
				}
			}
			q.Controls = cs
		}
		out[i] = q
	}
	return out, nil
}
