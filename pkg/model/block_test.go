package model

import (
	"testing"

	"github.com/mlxgo/mlxgo/pkg/engine"
)

type hookModel struct{ Model }

func TestBlockHook(t *testing.T) {
	m1, m2 := &hookModel{}, &hookModel{}
	x := engine.FromFloat32s([]float32{1}, 1)
	plain := func(x *engine.Array) *engine.Array { return x }
	var got []int
	hook := func(tag int) BlockHook {
		return func(layer int, x *engine.Array, block func(*engine.Array) *engine.Array) *engine.Array {
			got = append(got, tag*10+layer)
			return block(x)
		}
	}
	Block(m1, 0, x, plain)
	r1 := SetBlockHook(m1, hook(1))
	Block(m1, 2, x, plain)
	Block(m2, 3, x, plain) // another model: no hook
	r2 := SetBlockHook(m1, hook(2))
	Block(m1, 4, x, plain)
	r2()
	Block(m1, 5, x, plain) // back to the first hook
	r1()
	Block(m1, 6, x, plain) // none
	want := []int{12, 24, 15}
	if len(got) != len(want) {
		t.Fatalf("hook calls %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("hook calls %v, want %v", got, want)
		}
	}
	if n := nHooks.Load(); n != 0 {
		t.Errorf("%d hooks counted after every restore", n)
	}
}
