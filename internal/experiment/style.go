package experiment

import _ "embed"

// DefaultStyle is a 192x120 PNG of Vincent van Gogh's The Starry Night (1889, public domain),
// the style image when none is given.
//
//go:embed starry-night.png
var DefaultStyle []byte
