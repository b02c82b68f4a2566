package explore

import (
	"fmt"
	"math"
	"os"
	"testing"

	"move/internal/features"
	"move/internal/modelfile"
	"move/internal/verify"
	"move/internal/watermark"
)

func TestExplore(t *testing.T) {
	dir := os.Getenv("RUN")
	k, err := watermark.LoadKey(dir + "/marked/key.json")
	if err != nil {
		t.Fatal(err)
	}
	pairs, err := watermark.LoadPairs(k, 300)
	if err != nil {
		t.Fatal(err)
	}
	names := []string{"victim", "benign1", "benign2", "benign3", "suspects/copy", "suspects/distill", "suspects/zeroshot", "suspects/labelquery", "suspects/logitquery", "suspects/independent"}
	for _, n := range names {
		m, info, err := modelfile.Load(dir + "/" + n + ".safetensors")
		if err != nil {
			t.Fatal(err)
		}
		vm := verify.Model{Local: m, Norm: info.Norm, Size: info.InputSize}
		p := features.LocalProber{Model: m, Norm: info.Norm, Size: info.InputSize}
		var orig, sty [][]uint8
		for _, q := range pairs {
			orig, sty = append(orig, q.Orig), append(sty, q.Styled)
		}
		po, _ := p.Probs(orig, pairs[0].H, pairs[0].W)
		ps, _ := p.Probs(sty, pairs[0].H, pairs[0].W)
		var ao, as, lo, ls float64
		for i, q := range pairs {
			ao += b2f(argmax(po[i]) == q.Label)
			as += b2f(argmax(ps[i]) == q.Label)
			lo -= math.Log(float64(po[i][q.Label]) + 1e-9)
			ls -= math.Log(float64(ps[i][q.Label]) + 1e-9)
		}
		N := float64(len(pairs))
		st, _ := verify.Structure(vm, pairs)
		wb, err := verify.Features("white", "full", vm, pairs[:100])
		if err != nil {
			t.Fatal(err)
		}
		line := fmt.Sprintf("%-22s acc orig %.3f styled %.3f  loss orig %.3f styled %.3f |", n, ao/N, as/N, lo/N, ls/N)
		off := 0
		for _, part := range st.Parts {
			l := part.Param.Value.Len()
			var pos, zero float64
			for _, v := range wb {
				for _, s := range v[off : off+l] {
					if s > 0 {
						pos++
					} else if s == 0 {
						zero++
					}
				}
			}
			tot := float64(l * len(wb))
			line += fmt.Sprintf(" %.2f/%.2f", pos/tot, zero/tot)
			off += l
		}
		t.Log(line)
	}
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
func argmax(p []float32) int {
	b := 0
	for i := range p {
		if p[i] > p[b] {
			b = i
		}
	}
	return b
}
