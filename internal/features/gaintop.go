package features

// GainTop names the style-gain-top family: no features and no classifier. The owner ranks the
// key images by how much more the victim gains from the owner's style (its true-class
// probability on the owner-styled image minus its mean over the control-styled ones) than the
// benign models do, and a suspect's gains on the top m images (at most a third of one class)
// are paired against a clean reference's: the black-box verdict's style-gain test, on the m
// images where the victim's answer is most specific to the style instead of on hundreds drawn
// at random. It reads the suspect's answers only, so it reads any architecture (and a served
// model).
const GainTop = "style-gain-top"
