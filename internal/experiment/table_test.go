package experiment

import (
	"bytes"
	"math"
	"strings"
	"testing"
)

func TestHarmlessnessAgainstTheBenignMean(t *testing.T) {
	res := &Results{Models: []ModelFigure{{Name: "victim", Accuracy: 0.80}, {Name: "benign1", Accuracy: 0.81}, {Name: "benign2", Accuracy: 0.83}}}
	v, b, n, ok := Harmlessness(res)
	if !ok || v != 0.80 || math.Abs(b-0.82) > 1e-12 || n != 2 {
		t.Fatalf("Harmlessness = %v, %v, %d, %v; want 0.80, 0.82, 2, true", v, b, n, ok)
	}
	var buf bytes.Buffer
	WriteTable(&buf, res)
	if !strings.Contains(buf.String(), "-2.00 points from the mean of the 2 benign models (82.00%)") {
		t.Errorf("table:\n%s", buf.String())
	}
	if _, _, _, ok := Harmlessness(&Results{Models: []ModelFigure{{Name: "benign1"}}}); ok {
		t.Error("no victim: want ok = false")
	}
}
