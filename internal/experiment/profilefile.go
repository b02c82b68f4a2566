package experiment

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
)

// LoadProfile reads a profile from a JSON file in the form results.json records it
// (config.profile): the fields it gives override those of the built-in profile its "name"
// names (quick when the name is no built-in one), so a run's recorded profile can be
// copied, edited and run again. Unknown fields and values Validate refuses are errors that
// name the file.
func LoadProfile(path string) (Profile, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return Profile{}, fmt.Errorf("profile: %w", err)
	}
	var head struct {
		Name string `json:"name"`
	}
	if err := json.Unmarshal(b, &head); err != nil {
		return Profile{}, fmt.Errorf("profile %s: not one JSON object: %w", path, err)
	}
	p := Quick()
	if f, ok := Profiles[head.Name]; ok {
		p = f()
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&p); err != nil {
		return Profile{}, fmt.Errorf("profile %s: %w", path, err)
	}
	if p.Name == "" {
		p.Name = path
	}
	if err := p.Validate(); err != nil {
		return Profile{}, fmt.Errorf("profile %s: %w", path, err)
	}
	return p, nil
}

// Validate reports the first value of the profile no run can use. The architecture is
// checked with the run's configuration (Config.Validate).
func (p Profile) Validate() error {
	type check struct {
		bad  bool
		what string
	}
	for _, c := range []check{
		{p.TrainPerClass < 0 || p.ThiefPerClass < 0 || p.TestPerClass < 0, "images per class must not be negative"},
		{p.Size < 0, fmt.Sprintf("size %d: want 0 (keep) or a positive side", p.Size)},
		{!(p.Rate > 0 && p.Rate <= 1), fmt.Sprintf("rate %g: want a fraction in (0, 1]", p.Rate)},
		{p.Epochs < 1, fmt.Sprintf("epochs %d: want at least 1", p.Epochs)},
		{p.Benign < 2, fmt.Sprintf("benign %d: want at least 2 (one to train the meta-classifier against, one as the test's reference)", p.Benign)},
		{p.MetaTrain < 1 || p.MetaTrainBlack < 0, "meta_train must be positive and meta_train_black not negative"},
		{p.MetaHidden != "mlp" && p.MetaHidden != "logistic", fmt.Sprintf("meta_hidden %q: want mlp or logistic", p.MetaHidden)},
		{p.DistillEpochs < 1 || p.FinetuneEpochs < 1 || p.QueryEpochs < 1 || p.IndependentEpochs < 1, "every attack's epochs must be at least 1"},
		{!(p.AdaptiveFraction > 0 && p.AdaptiveFraction <= 1), fmt.Sprintf("adaptive_fraction %g: want a fraction in (0, 1]", p.AdaptiveFraction)},
		{p.ZeroShotIters < 1 || p.ZeroShotBatch < 1 || p.ZeroShotWidth < 1, "the zero-shot attack's iterations, batch and width must be at least 1"},
		{p.Controls < -1 || p.ControlSamples < 0, "controls must be -1 (none) or more, control_samples not negative"},
		{p.Innocents < 0 || p.ClaimStyles < 0, "innocents and claim_styles must not be negative"},
		{p.MWhite < 2 || p.MBlack < 2, fmt.Sprintf("m_white %d, m_black %d: a paired t-test needs at least 2 images", p.MWhite, p.MBlack)},
		{!(p.Alpha > 0 && p.Alpha < 1), fmt.Sprintf("alpha %g: want a level in (0, 1)", p.Alpha)},
		{!(p.MinDelta >= 0), fmt.Sprintf("min_delta %g: want 0 or more", p.MinDelta)},
		{!(p.RefShortfall >= 0 && p.RefShortfall <= 1), fmt.Sprintf("reference_shortfall %g: want a fraction in [0, 1]", p.RefShortfall)},
	} {
		if c.bad {
			return errors.New(c.what)
		}
	}
	if err := p.Style.Validate(); err != nil {
		return fmt.Errorf("style: %w", err)
	}
	return nil
}
