package features

// For the external tests of this package (package features_test), which may import packages
// that import this one.
var (
	PermuteChannels = permuteChannels
	RandomBN        = randomBN
)
