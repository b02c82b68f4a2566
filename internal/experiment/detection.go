package experiment

import (
	"fmt"
	"io"
	"text/tabwriter"

	"move/internal/badnets"
	"move/internal/data"
	"move/internal/detect"
)

// Detection is the thief's search for the owner's mark in one victim (Config.Detect): STRIP
// on the victim's marked inputs against clean ones, Neural Cleanse over every class, and
// Grad-CAM saliency on clean and marked inputs.
type Detection struct {
	Victim string                `json:"victim"` // move, or a baseline defence
	Marked string                `json:"marked"` // what the marked inputs are
	STRIP  *detect.STRIPResult   `json:"strip"`
	NC     *detect.CleanseResult `json:"neural_cleanse"`
	// Saliency compares Grad-CAM maps on clean and marked inputs (the region is BadNets'
	// trigger square); Picture shows marked inputs over their maps (relative to OUT).
	Saliency *detect.SaliencyResult `json:"saliency"`
	Picture  string                 `json:"picture,omitempty"`
}

// detectionInputs is how many clean and marked inputs STRIP compares, and its overlays.
const detectionInputs, stripOverlays = 200, 20

// detection runs STRIP and Neural Cleanse on MOVE's victim (marked inputs: the key's styled
// images), on a benign model (the same inputs: the unmarked baseline) and, when the BadNets
// baseline ran, on its victim (triggered test images), one resumable stage each.
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
	// The unmarked baseline: a benign model read on the same styled images. What a detector
	// says about it is what it says about a model that carries no mark at all.
	jobs := []job{{"benign", r.path("benign1.safetensors"), "the key's styled training images (it never trained on them)", r.base, styled},
		{"move", r.path("victim.safetensors"), "the key's styled training images", r.base, styled}}
	if r.res.Defences[BadNets] != nil {
		jobs = append(jobs, job{BadNets, r.path(BadNets, "victim.safetensors"), "test images stamped with the trigger", r.stageHash("badnets-victim"), triggered})
	}
	for _, j := range jobs {
		if err := r.ctx.Err(); err != nil {
			return err
		}
		d := Detection{Victim: j.name, Marked: j.marked}
		conf := map[string]any{"victim": j.upstream, "n": n, "overlays": stripOverlays, "nc": "steps60-batch32", "saliency": "gradcam-v1"}
		err := r.stage("detect-"+j.name, conf, nil, &d, func() error {
			v, err := r.load(j.file)
			if err != nil {
				return err
			}
			if d.STRIP, err = detect.STRIP(v, r.clean, clean, j.inputs, r.test.H, r.test.W, stripOverlays, r.cfg.Seed); err != nil {
				return fmt.Errorf("STRIP on %s: %w", detectionSubject(j.name), err)
			}
			r.log.Printf("STRIP on %s: entropy %.3f clean, %.3f marked; %.0f%% of marked inputs detected at 1%% false rejections",
				detectionSubject(j.name), d.STRIP.MeanClean, d.STRIP.MeanMarked, 100*d.STRIP.Detected)
			if d.NC, err = detect.NeuralCleanse(v.Local, v.Norm, r.clean, detect.CleanseOptions{Steps: 60, Batch: 32, Seed: r.cfg.Seed}); err != nil {
				return fmt.Errorf("Neural Cleanse on %s: %w", detectionSubject(j.name), err)
			}
			h, w := r.test.H, r.test.W
			box := detect.Region{Y0: h - tr.Margin - tr.Size, Y1: h - tr.Margin, X0: w - tr.Margin - tr.Size, X1: w - tr.Margin}
			sal, maps, err := detect.Saliency(v.Local, v.Norm, clean, j.inputs, h, w, box)
			if err != nil {
				return fmt.Errorf("saliency on %s: %w", detectionSubject(j.name), err)
			}
			d.Saliency, d.Picture = sal, "saliency-"+j.name+".png"
			return saliencySheet(r.path(d.Picture), j.inputs, maps, h, w)
		})
		if err != nil {
			return err
		}
		r.log.Printf("Neural Cleanse on %s: smallest mask for class %d, anomaly index %.2f (flagged above 2: %v)", detectionSubject(j.name), d.NC.Class, d.NC.Anomaly, d.NC.Flagged)
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
	fmt.Fprintln(tw, "victim\tmarked inputs\tSTRIP entropy clean\tmarked\tdetected %\tNC smallest class\tmask L1\tanomaly index\tflagged\tCAM top-5% clean\tmarked\tCAM in trigger square clean\tmarked\t")
	for _, d := range res.Detections {
		sal := "-\t-\t-\t-"
		if s := d.Saliency; s != nil {
			sal = fmt.Sprintf("%.2f\t%.2f\t%.2f\t%.2f", s.CleanConcentration, s.MarkedConcentration, s.CleanInRegion, s.MarkedInRegion)
		}
		fmt.Fprintf(tw, "%s\t%s\t%.3f\t%.3f\t%.0f\t%d\t%.1f\t%.2f\t%v\t%s\t\n", d.Victim, d.Marked, d.STRIP.MeanClean, d.STRIP.MeanMarked,
			100*d.STRIP.Detected, d.NC.Class, d.NC.Norms[d.NC.Class], d.NC.Anomaly, d.NC.Flagged, sal)
	}
	tw.Flush()
	if len(res.Detections) > 0 && res.Detections[0].Saliency != nil {
		fmt.Fprintf(w, "CAM: Grad-CAM of the predicted class; top-5%%: share of a map's mass in its hottest 5%% of pixels; the trigger square is %.1f%% of the image\n",
			100*res.Detections[0].Saliency.RegionArea)
	}
}

// saliencySheet writes up to 6 marked inputs (top row) over their class activation maps
// (bottom row) as one PNG.
func saliencySheet(path string, imgs [][]uint8, maps [][]float32, h, w int) error {
	n := min(6, len(imgs))
	const gap = 2
	sw, sh := n*w+(n-1)*gap, 2*h+gap
	pix := make([]uint8, sw*sh*3)
	for i := range pix {
		pix[i] = 255
	}
	put := func(img []uint8, row, col int) {
		for y := range h {
			o := ((row*(h+gap)+y)*sw + col*(w+gap)) * 3
			copy(pix[o:o+w*3], img[y*w*3:(y+1)*w*3])
		}
	}
	for i := range n {
		put(imgs[i], 0, i)
		put(detect.Overlay(imgs[i], maps[i]), 1, i)
	}
	return data.WritePNG(path, pix, sh, sw, true)
}

// detectionSubject names the model a detection study read.
func detectionSubject(victim string) string {
	if victim == "benign" {
		return "a benign model (no mark: the baseline)"
	}
	return "the " + victim + " victim"
}
