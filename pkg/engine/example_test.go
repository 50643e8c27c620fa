package engine_test

import (
	"fmt"

	"github.com/mlxgo/mlxgo/pkg/engine"
)

// A linear model's squared loss and its gradients, built lazily and
// evaluated in one call.
func Example() {
	x := engine.FromFloat32s([]float32{1, 2, 3, 4}, 2, 2)    // [B, D]
	w := engine.FromFloat32s([]float32{0.5, -1, 2, 0}, 2, 2) // [D, D]
	y := engine.FromFloat32s([]float32{1, 0, 0, 1}, 2, 2)    // [B, D]

	loss := func(p []*engine.Array) *engine.Array {
		d := engine.Subtract(engine.Matmul(x, p[0]), y)
		return engine.Mean(engine.Square(d), false)
	}
	value, grads, err := engine.ValueAndGrad(loss)([]*engine.Array{w})
	if err != nil {
		panic(err)
	}
	if err := engine.Eval(append([]*engine.Array{value}, grads...)...); err != nil {
		panic(err)
	}
	v, _ := value.Item()
	g, _ := grads[0].Float32s()
	fmt.Printf("loss %.3f\ngrad %v\n", v, g)
	// Output:
	// loss 29.875
	// grad [16 -6.5 22.5 -9]
}
