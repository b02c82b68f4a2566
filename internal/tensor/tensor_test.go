package tensor

import "testing"

func TestLayoutRoundTrip(t *testing.T) {
	x := New(2, 3, 4, 5)
	for i := range x.Data {
		x.Data[i] = float32(i)
	}
	c := ToNCHW(x)
	// NHWC[1][2][3][4] == NCHW[1][4][2][3]
	if c.Data[((1*5+4)*3+2)*4+3] != x.Data[((1*3+2)*4+3)*5+4] {
		t.Fatal("NCHW element differs")
	}
	back := ToNHWC(c)
	for i := range x.Data {
		if back.Data[i] != x.Data[i] {
			t.Fatal("round trip differs")
		}
	}
	if Numel([]int{2, 3, 4}) != 24 || !SameShape(x.Shape, []int{2, 3, 4, 5}) || SameShape(x.Shape, []int{2, 3}) {
		t.Fatal("shape helpers")
	}
}
