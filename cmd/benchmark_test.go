package cmd

import (
	"regexp"
	"testing"
)

func TestBenchmarkOutput(t *testing.T) {
	dir := fakeModelDir(t, 64)
	for _, batch := range []string{"1", "3"} {
		code, out, errOut := runWith(t, "", "benchmark", "--model", dir, "-p", "9", "-g", "5", "-n", "2", "-b", batch, "--prefill-step-size", "4")
		if code != 0 {
			t.Fatalf("-b %s: exit %d: %s", batch, code, errOut)
		}
		num := `\d+\.\d{3}`
		trial := `prompt_tps=` + num + `, generation_tps=` + num + `, peak_memory=` + num
		re := regexp.MustCompile(`^Running warmup\.\.\nTiming with prompt_tokens=9, generation_tokens=5, batch_size=` + batch + `\.\n` +
			`Trial 1:  ` + trial + `, total_time=` + num + `\nTrial 2:  ` + trial + `, total_time=` + num + `\nAverages: ` + trial + `\n$`)
		if !re.MatchString(out) {
			t.Fatalf("-b %s: output not in mlx_lm.benchmark's format:\n%s", batch, out)
		}
	}
}
