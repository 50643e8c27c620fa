// Package optim holds the training optimizers and learning-rate schedules
// with mlx.optimizers' semantics.
package optim

import (
	"fmt"
	"math"
)

// Schedule maps an optimizer step (0 for the first update, as MLX counts)
// to a learning rate. MLX evaluates schedules in float32; so do these.
type Schedule func(step int) float32

// Constant is a fixed learning rate.
func Constant(lr float64) Schedule { return func(int) float32 { return float32(lr) } }

// ExponentialDecay is init · rate^step.
func ExponentialDecay(init, rate float64) Schedule {
	return func(step int) float32 { return float32(init) * float32(math.Pow(rate, float64(step))) }
}

// StepDecay is init · rate^(step / stepSize), integer division.
func StepDecay(init, rate float64, stepSize int) (Schedule, error) {
	if stepSize < 1 {
		return nil, fmt.Errorf("step_decay: step_size must be greater than 0, but got %d", stepSize)
	}
	return func(step int) float32 {
		return float32(init) * float32(math.Pow(rate, float64(step/stepSize)))
	}, nil
}

// CosineDecay goes from init to end over decaySteps and stays at end.
func CosineDecay(init float64, decaySteps int, end float64) (Schedule, error) {
	if decaySteps < 1 {
		return nil, fmt.Errorf("cosine_decay: decay_steps must be greater than 0, but got %d", decaySteps)
	}
	return func(step int) float32 {
		s := float32(min(step, decaySteps))
		decay := 0.5 * (1 + float32(math.Cos(float64(float32(math.Pi/float64(decaySteps))*s))))
		return float32(end) + decay*float32(init-end)
	}, nil
}

// LinearSchedule goes linearly from init to end over steps and stays at end.
func LinearSchedule(init, end float64, steps int) (Schedule, error) {
	if steps < 1 {
		return nil, fmt.Errorf("linear_schedule: steps must be greater than 0, but got %d", steps)
	}
	return func(step int) float32 {
		s := float32(min(step, steps))
		return s*float32((end-init)/float64(steps)) + float32(init)
	}, nil
}

// Join runs schedules[0] until boundaries[0], then schedules[1] on the steps
// since that boundary, and so on.
func Join(schedules []Schedule, boundaries []int) (Schedule, error) {
	if len(schedules) == 0 || len(schedules) != len(boundaries)+1 {
		return nil, fmt.Errorf("join_schedules: %d schedules need %d boundaries, got %d", len(schedules), len(schedules)-1, len(boundaries))
	}
	return func(step int) float32 {
		out := schedules[0](step)
		for i, b := range boundaries {
			if step >= b {
				out = schedules[i+1](step - b)
			}
		}
		return out
	}, nil
}

// ScheduleConfig is mlx_lm's YAML lr_schedule entry.
type ScheduleConfig struct {
	Name       string    `json:"name" yaml:"name"`
	Arguments  []float64 `json:"arguments" yaml:"arguments"`
	Warmup     int       `json:"warmup,omitempty" yaml:"warmup"`
	WarmupInit float64   `json:"warmup_init,omitempty" yaml:"warmup_init"`
}

// Build makes the schedule mlx_lm's build_schedule makes: the named
// scheduler over the arguments (the first is the initial rate), preceded,
// with warmup, by a linear ramp from warmup_init joined at warmup+1.
func (c ScheduleConfig) Build() (Schedule, error) {
	a := c.Arguments
	need := map[string]int{"cosine_decay": 2, "exponential_decay": 2, "step_decay": 3, "linear_schedule": 3}
	n, ok := need[c.Name]
	if !ok {
		return nil, fmt.Errorf("lr_schedule: unknown name %q (expected cosine_decay, exponential_decay, step_decay or linear_schedule)", c.Name)
	}
	if len(a) < n || (c.Name == "cosine_decay" && len(a) > 3) || (c.Name != "cosine_decay" && len(a) > n) {
		return nil, fmt.Errorf("lr_schedule: %s takes %d arguments (%s), got %v", c.Name, n, argNames[c.Name], a)
	}
	var s Schedule
	var err error
	switch c.Name {
	case "cosine_decay":
		end := 0.0
		if len(a) == 3 {
			end = a[2]
		}
		s, err = CosineDecay(a[0], int(a[1]), end)
	case "exponential_decay":
		s = ExponentialDecay(a[0], a[1])
	case "step_decay":
		s, err = StepDecay(a[0], a[1], int(a[2]))
	case "linear_schedule":
		s, err = LinearSchedule(a[0], a[1], int(a[2]))
	}
	if err != nil || c.Warmup <= 0 {
		return s, err
	}
	warm, err := LinearSchedule(c.WarmupInit, a[0], c.Warmup)
	if err != nil {
		return nil, err
	}
	return Join([]Schedule{warm, s}, []int{c.Warmup + 1})
}

var argNames = map[string]string{
	"cosine_decay":      "init, decay_steps[, end]",
	"exponential_decay": "init, decay_rate",
	"step_decay":        "init, decay_rate, step_size",
	"linear_schedule":   "init, end, steps",
}
