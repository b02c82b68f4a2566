package experiment

import (
	"fmt"
	"io"
	"text/tabwriter"

	"move/internal/badnets"
	"move/internal/detect"
)

// Detection is the thief's search for the owner's mark in one victim (Config.Detect): STRIP
// on the victim's marked inputs against clean ones, and Neural Cleanse over every class.
type Detection struct {
	Victim string                `json:"victim"` // move, or a baseline defence
	Marked string                `json:"marked"` // what the marked inputs are
	STRIP  *detect.STRIPResult   `json:"strip"`
	NC     *detect.CleanseResult `json:"neural_cleanse"`
}

// detectionInputs is how many clean and marked inputs STRIP compares, and its overlays.
const detectionInputs, stripOverlays = 200, 20

// detection runs STRIP and Neural Cleanse on MOVE's victim (marked inputs: the key's styled
// images) and, when the BadNets baseline ran, on its victim (triggered test images), one
// resumable stage each.
func (r *runner) detection() error {
	if !r.cfg.Detect {
		return nil
	}
	pairs, err := r.keyPairs()
	if err != nil {
		return err
	}
	n := min(detectionInputs, len(pairs), r.test.Len())
	var clean, styled, triggered [][]uint8
	tr := badnets.DefaultTrigger(r.size)
	for i := range n {
		clean = append(clean, r.test.Image(i))
		styled = append(styled, pairs[i].Styled)
	}
	for i := 0; i < r.test.Len() && len(triggered) < n; i++ {
		if r.test.Labels[i] != tr.Target {
			triggered = append(triggered, tr.Stamp(r.test.Image(i), r.test.H, r.test.W))
		}
	}
	type job struct {
		name, file, marked, upstream string
		inputs                       [][]uint8
	}
	jobs := []job{{"move", r.path("victim.safetensors"), "the key's styled training images", r.base, styled}}
	if r.res.Defences[BadNets] != nil {
		jobs = append(jobs, job{BadNets, r.path(BadNets, "victim.safetensors"), "test images stamped with the trigger", r.stageHash("badnets-victim"), triggered})
	}
	for _, j := range jobs {
		d := Detection{Victim: j.name, Marked: j.marked}
		conf := map[string]any{"victim": j.upstream, "n": n, "overlays": stripOverlays, "nc": "steps60-batch32"}
		err := r.stage("detect-"+j.name, conf, nil, &d, func() error {
			v, err := r.load(j.file)
			if err != nil {
				return err
			}
			if d.STRIP, err = detect.STRIP(v, r.clean, clean, j.inputs, r.test.H, r.test.W, stripOverlays, r.cfg.Seed); err != nil {
				return fmt.Errorf("STRIP on the %s victim: %w", j.name, err)
			}
			r.log.Printf("STRIP on the %s victim: entropy %.3f clean, %.3f marked; %.0f%% of marked inputs detected at 1%% false rejections",
				j.name, d.STRIP.MeanClean, d.STRIP.MeanMarked, 100*d.STRIP.Detected)
			if d.NC, err = detect.NeuralCleanse(v.Local, v.Norm, r.clean, detect.CleanseOptions{Steps: 60, Batch: 32, Seed: r.cfg.Seed}); err != nil {
				return fmt.Errorf("Neural Cleanse on the %s victim: %w", j.name, err)
			}
			return nil
		})
		if err != nil {
			return err
		}
		r.log.Printf("Neural Cleanse on the %s victim: smallest mask for class %d, anomaly index %.2f (flagged above 2: %v)", j.name, d.NC.Class, d.NC.Anomaly, d.NC.Flagged)
		r.res.Detections = append(r.res.Detections, d)
	}
	return nil
}

// writeDetections prints the detection studies: can the thief find the owner's mark?
func writeDetections(w io.Writer, res *Results) {
	if len(res.Detections) == 0 {
		return
	}
	fmt.Fprintln(w, "\nthe thief looks for the mark (STRIP: marked inputs rejected at 1% false rejections of clean ones;")
	fmt.Fprintln(w, "Neural Cleanse: a class reachable by an outlying small mask, anomaly index above 2):")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "victim\tmarked inputs\tSTRIP entropy clean\tmarked\tdetected %\tNC smallest class\tmask L1\tanomaly index\tflagged\t")
	for _, d := range res.Detections {
		fmt.Fprintf(tw, "%s\t%s\t%.3f\t%.3f\t%.0f\t%d\t%.1f\t%.2f\t%v\t\n", d.Victim, d.Marked, d.STRIP.MeanClean, d.STRIP.MeanMarked,
			100*d.STRIP.Detected, d.NC.Class, d.NC.Norms[d.NC.Class], d.NC.Anomaly, d.NC.Flagged)
	}
	tw.Flush()
}
