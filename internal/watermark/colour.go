package watermark

import (
	"fmt"

	"move/internal/style"
)

// Colour compares the colour of a key's originals with that of their styled versions: a mark
// that adds colour to grey images lives where no clean image does.
type Colour struct {
	Samples  int     `json:"samples"`         // pairs read
	Original float64 `json:"original_chroma"` // mean style.Chroma of the originals (0-255)
	Styled   float64 `json:"styled_chroma"`   // mean style.Chroma of their styled versions
}

// Thresholds of Colour.Warning, in chroma units (0-255), measured on keys: the demo's grey
// Fashion-MNIST originals read 0.0 and its Starry Night makes them 47; CIFAR-10's originals
// read 34 and their styled versions 51; the demo with the colours kept, 0.0 and 0.0.
const (
	greyChroma  = 2
	addedChroma = 8
)

// PairsColour measures the colour of pairs.
func PairsColour(pairs []Pair) Colour {
	c := Colour{Samples: len(pairs)}
	for _, p := range pairs {
		c.Original += style.Chroma(p.Orig)
		c.Styled += style.Chroma(p.Styled)
	}
	if len(pairs) > 0 {
		c.Original /= float64(len(pairs))
		c.Styled /= float64(len(pairs))
	}
	return c
}

// Warning says why the mark may not reach students, or "" when the colours give no reason:
// the originals are grey and the styling added colour.
func (c Colour) Warning() string {
	if c.Samples == 0 || c.Original >= greyChroma || c.Styled-c.Original < addedChroma {
		return ""
	}
	return fmt.Sprintf("the originals are grey (mean chroma %.1f of 255) and their styled versions are not (%.1f): "+
		"the victim can learn the mark as colour, which no clean image shows, and students trained on clean images "+
		"(distillation, label- and logit-query) cannot inherit what they never see (on grey Fashion-MNIST they inherited "+
		"nothing: README, \"The colour\"); --keep-colors keeps the originals' colours, at a measured cost in specificity", c.Original, c.Styled)
}
