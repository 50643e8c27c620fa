package optim

import (
	"math"
	"testing"
)

func near(a, b float32) bool { return math.Abs(float64(a-b)) <= 1e-6*math.Max(1, math.Abs(float64(b))) }

// Expected values are the docstring examples of mlx.optimizers.schedulers.
func TestSchedules(t *testing.T) {
	exp := ExponentialDecay(0.1, 0.9)
	if !near(exp(4), 0.06561) {
		t.Errorf("exponential_decay(0.1, 0.9) at 4 = %v", exp(4))
	}
	st, _ := StepDecay(0.1, 0.9, 10)
	if !near(st(21), 0.081) || !near(st(9), 0.1) {
		t.Errorf("step_decay at 21 = %v, at 9 = %v", st(21), st(9))
	}
	cos, _ := CosineDecay(0.1, 1000, 0)
	if !near(cos(5), 0.0999938) || !near(cos(2000), 0) || !near(cos(500), 0.05) {
		t.Errorf("cosine_decay: %v %v %v", cos(5), cos(2000), cos(500))
	}
	lin, _ := LinearSchedule(0, 0.1, 100)
	if !near(lin(50), 0.05) || !near(lin(500), 0.1) {
		t.Errorf("linear_schedule: %v %v", lin(50), lin(500))
	}
}

func TestWarmupJoin(t *testing.T) {
	s, err := ScheduleConfig{Name: "cosine_decay", Arguments: []float64{1e-5, 100}, Warmup: 10}.Build()
	if err != nil {
		t.Fatal(err)
	}
	// Warmup ramps 0 -> 1e-5 over steps 0..10; the decay starts at step 11 with its own step 0.
	if !near(s(0), 0) || !near(s(5), 5e-6) || !near(s(10), 1e-5) || !near(s(11), 1e-5) {
		t.Errorf("warmup: %v %v %v %v", s(0), s(5), s(10), s(11))
	}
	cos, _ := CosineDecay(1e-5, 100, 0)
	if !near(s(61), cos(50)) {
		t.Errorf("after warmup: %v, want %v", s(61), cos(50))
	}
}

func TestBadSchedules(t *testing.T) {
	bad := []ScheduleConfig{
		{Name: "nope", Arguments: []float64{1}},
		{Name: "cosine_decay", Arguments: []float64{1e-5}},
		{Name: "step_decay", Arguments: []float64{1, 0.5, 0}},
		{Name: "linear_schedule", Arguments: []float64{1, 0, 10, 4}},
	}
	for _, c := range bad {
		if _, err := c.Build(); err == nil {
			t.Errorf("%+v accepted", c)
		}
	}
}
