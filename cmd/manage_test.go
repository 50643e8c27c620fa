package cmd

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/mlxgo/mlxgo/pkg/hub"
	"github.com/mlxgo/mlxgo/pkg/hub/hubtest"
)

func TestManageFlagsToOptions(t *testing.T) {
	cases := []struct {
		args []string
		want ManageOptions
	}{
		{[]string{"--scan"}, ManageOptions{Scan: true, Pattern: "mlx"}},
		{[]string{"--scan", "--pattern", "Qwen"}, ManageOptions{Scan: true, Pattern: "Qwen"}},
		{[]string{"--delete", "Qwen"}, ManageOptions{Delete: true, Pattern: "Qwen"}},
		{[]string{"--delete", "--pattern", "Qwen", "--yes", "--cache-dir", "/c"}, ManageOptions{Delete: true, Pattern: "Qwen", Yes: true, CacheDir: "/c"}},
	}
	for _, tc := range cases {
		var got *ManageOptions
		c := newManageCmdWith(&Factory{}, func(_ context.Context, _ *Factory, o *ManageOptions) error { got = o; return nil })
		c.SetArgs(tc.args)
		c.SetOut(&bytes.Buffer{})
		c.SetErr(&bytes.Buffer{})
		if err := c.Execute(); err != nil {
			t.Fatalf("%v: %v", tc.args, err)
		}
		if !reflect.DeepEqual(*got, tc.want) {
			t.Errorf("%v: %+v, want %+v", tc.args, *got, tc.want)
		}
	}
	for _, args := range [][]string{
		{"manage"},
		{"manage", "--scan", "Qwen"},
		{"manage", "--delete", "--pattern", ""},
		{"manage", "--delete", "a", "--pattern", "b"},
	} {
		if code, _, errOut := runArgs(t, args...); code != 2 || !strings.HasPrefix(errOut, "Error: ") {
			t.Errorf("%v: code %d, stderr %q", args, code, errOut)
		}
	}
}

// TestTabulateMatchesMlxLm compares with the output of mlx_lm/manage.py's
// tabulate (Python 3, same rows).
func TestTabulateMatchesMlxLm(t *testing.T) {
	got := tabulate([][]any{
		{"mlx-community/tiny-4bit", "model", "        6.3K", 6, "3 days ago", "a few seconds ago", "/c/models--mlx-community--tiny-4bit"},
		{"x/mlx", "model", "       12.0M", 12, "2 weeks ago", "1 year ago", "/c/models--x--mlx"},
	}, []string{"REPO ID", "REPO TYPE", "SIZE ON DISK", "NB FILES", "LAST_ACCESSED", "LAST_MODIFIED", "LOCAL PATH"})
	want := "REPO ID                 REPO TYPE SIZE ON DISK NB FILES LAST_ACCESSED LAST_MODIFIED     LOCAL PATH                          \n" +
		"----------------------- --------- ------------ -------- ------------- ----------------- ----------------------------------- \n" +
		"mlx-community/tiny-4bit model             6.3K        6 3 days ago    a few seconds ago /c/models--mlx-community--tiny-4bit \n" +
		"x/mlx                   model            12.0M       12 2 weeks ago   1 year ago        /c/models--x--mlx                   "
	if got != want {
		t.Errorf("got\n%q\nwant\n%q", got, want)
	}
	if got := tabulate(nil, []string{"REPO ID", "SIZE", "LOCAL PATH"}); got != "REPO ID SIZE LOCAL PATH \n------- ---- ---------- " {
		t.Errorf("empty table %q", got)
	}
}

// fillCache downloads two repos into a fresh cache and dates their blobs.
func fillCache(t *testing.T) (cache string, now time.Time) {
	t.Helper()
	s := hubtest.New(t)
	s.AddRepo("mlx-community/tiny-4bit", map[string][]byte{"config.json": []byte(`{"a":1}`), "model.safetensors": bytes.Repeat([]byte{1}, 6300)})
	s.AddRepo("org/other", map[string][]byte{"config.json": []byte(`{}`)})
	c := hub.FromEnv(func(string) string { return "" })
	c.Endpoint, c.CacheDir = s.URL(), filepath.Join(t.TempDir(), "hub")
	for _, id := range []string{"mlx-community/tiny-4bit", "org/other"} {
		if _, err := c.Snapshot(context.Background(), id, hub.SnapshotOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	now = time.Now()
	blobs, _ := filepath.Glob(filepath.Join(c.CacheDir, "*", "blobs", "*"))
	for _, b := range blobs {
		os.Chtimes(b, now.Add(-3*24*time.Hour), now.Add(-14*24*time.Hour))
	}
	return c.CacheDir, now
}

func TestManageScan(t *testing.T) {
	cache, now := fillCache(t)
	var out bytes.Buffer
	f := &Factory{Out: &out, ErrOut: &bytes.Buffer{}}
	if err := runManage(context.Background(), f, &ManageOptions{Scan: true, Pattern: "mlx", CacheDir: cache, Now: now}); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
	if len(lines) != 4 || lines[0] != `Scanning Hugging Face cache for models with pattern "mlx".` {
		t.Fatalf("output %q", out.String())
	}
	real, _ := filepath.EvalSymlinks(cache)
	path := filepath.Join(real, "models--mlx-community--tiny-4bit")
	want := tabulate([][]any{{"mlx-community/tiny-4bit", "model", "        6.3K", 2, "3 days ago", "2 weeks ago", path}},
		[]string{"REPO ID", "REPO TYPE", "SIZE ON DISK", "NB FILES", "LAST_ACCESSED", "LAST_MODIFIED", "LOCAL PATH"})
	if got := strings.Join(lines[1:], "\n"); got != want {
		t.Errorf("table\n%s\nwant\n%s", got, want)
	}
}

func TestManageDelete(t *testing.T) {
	cache, _ := fillCache(t)
	repoDir := filepath.Join(cache, "models--mlx-community--tiny-4bit")
	run := func(in string, o ManageOptions) string {
		var out bytes.Buffer
		o.CacheDir = cache
		if err := runManage(context.Background(), &Factory{In: strings.NewReader(in), Out: &out, ErrOut: &bytes.Buffer{}}, &o); err != nil {
			t.Fatal(err)
		}
		return out.String()
	}
	out := run("n\n", ManageOptions{Delete: true, Pattern: "tiny"})
	if !strings.Contains(out, "Found the following models:") || !strings.Contains(out, "Are you sure you want to delete these models? (y/n) ") || !strings.Contains(out, "Deletion cancelled - no changes made.") {
		t.Errorf("answer n: %q", out)
	}
	if _, err := os.Stat(repoDir); err != nil {
		t.Fatal("deleted although the answer was no")
	}
	out = run("", ManageOptions{Delete: true, Pattern: "tiny"})
	if !strings.Contains(out, "Deletion cancelled") {
		t.Errorf("no input: %q", out)
	}
	out = run("maybe\nyes\n", ManageOptions{Delete: true, Pattern: "tiny"})
	if !strings.Contains(out, "Invalid input. Must be one of: yes/no/y/n or empty for no") || !strings.Contains(out, "Deleting mlx-community/tiny-4bit...") || !strings.Contains(out, "Model(s) deleted successfully.") {
		t.Errorf("answer maybe then yes: %q", out)
	}
	if _, err := os.Stat(repoDir); !os.IsNotExist(err) {
		t.Fatal("not deleted")
	}
	out = run("", ManageOptions{Delete: true, Pattern: "tiny"})
	if !strings.Contains(out, `No models found matching pattern "tiny"`) {
		t.Errorf("nothing left: %q", out)
	}
	out = run("", ManageOptions{Delete: true, Pattern: "other", Yes: true})
	if strings.Contains(out, "(y/n)") || !strings.Contains(out, "Model(s) deleted successfully.") {
		t.Errorf("--yes: %q", out)
	}
	info, err := hub.ScanCache(cache)
	if err != nil || len(info.Repos) != 0 {
		t.Errorf("after deletes: %+v %v", info, err)
	}
}
