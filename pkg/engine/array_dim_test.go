package engine

import (
	"errors"
	"testing"
)

func TestDimOfErrorArrayDoesNotPanic(t *testing.T) {
	bad := Errorf("boom")
	if d := bad.Dim(1); d != 0 {
		t.Fatalf("Dim of an error array = %d, want 0", d)
	}
	var nilArr *Array
	if d := nilArr.Dim(-1); d != 0 {
		t.Fatalf("Dim of a nil array = %d, want 0", d)
	}
	// Code that sizes a reshape from Dim still surfaces the original error.
	out := Reshape(bad, bad.Dim(0), -1)
	if err := Eval(out); err == nil || !errors.Is(err, bad.Err()) && err.Error() != bad.Err().Error() {
		t.Fatalf("Eval error %v, want the carried error %v", err, bad.Err())
	}
}
