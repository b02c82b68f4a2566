package data

import (
	"fmt"
	"math"
	"math/rand/v2"
)

// Synthetic generates a labelled set of size x size images in `classes` classes that a small
// CNN learns in a few epochs: each class is an oriented stripe pattern of its own frequency and
// colour, with random phase, contrast, a random blob occluder and pixel noise. Deterministic
// for a seed.
func Synthetic(n, classes, size int, seed uint64) *Set {
	rng := rand.New(rand.NewPCG(seed, 0x73796e74))
	s := &Set{H: size, W: size, Pixels: make([]uint8, n*size*size*3), Labels: make([]int, n)}
	for c := range classes {
		s.Classes = append(s.Classes, fmt.Sprintf("class%02d", c))
	}
	for i := range n {
		c := i % classes
		s.Labels[i] = c
		angle := math.Pi * float64(c) / float64(classes)
		freq := 2 * math.Pi * (1.5 + float64(c%3)) / float64(size)
		hue := float64(c) / float64(classes)
		col := [3]float64{0.5 + 0.5*math.Cos(2*math.Pi*hue), 0.5 + 0.5*math.Cos(2*math.Pi*(hue+1.0/3)), 0.5 + 0.5*math.Cos(2*math.Pi*(hue+2.0/3))}
		phase := rng.Float64() * 2 * math.Pi
		contrast := 0.6 + 0.4*rng.Float64()
		bx, by, br := rng.Float64()*float64(size), rng.Float64()*float64(size), float64(size)*(0.1+0.15*rng.Float64())
		ca, sa := math.Cos(angle), math.Sin(angle)
		img := s.Image(i)
		for y := range size {
			for x := range size {
				t := 0.5 + 0.5*contrast*math.Sin(freq*(ca*float64(x)+sa*float64(y))+phase)
				occl := (float64(x)-bx)*(float64(x)-bx)+(float64(y)-by)*(float64(y)-by) < br*br
				for ch := range 3 {
					v := t * col[ch]
					if occl {
						v = 0.5
					}
					v += 0.08 * rng.NormFloat64()
					img[(y*size+x)*3+ch] = uint8(math.Round(255 * min(1, max(0, v))))
				}
			}
		}
	}
	return s
}
