package hub

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/mlxgo/mlxgo/pkg/hub/hubtest"
)

// pyScript drives Python's huggingface_hub against the fake Hub.
const pyScript = `
import inspect, json, sys
import filelock
if "mode" not in inspect.signature(filelock.FileLock.__init__).parameters:
    # Older filelock (Debian 12 ships 3.9) lacks the mode= huggingface_hub passes.
    class _FileLock(filelock.FileLock):
        def __init__(self, *args, mode=None, **kwargs):
            super().__init__(*args, **kwargs)
    filelock.FileLock = _FileLock
from huggingface_hub import snapshot_download, hf_hub_download, scan_cache_dir
mode, endpoint, cache, repo, allow = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], json.loads(sys.argv[5])
if mode == "download":
    print(snapshot_download(repo, cache_dir=cache, endpoint=endpoint, allow_patterns=allow, token=False))
elif mode == "offline":
    p = snapshot_download(repo, cache_dir=cache, allow_patterns=allow, local_files_only=True)
    f = hf_hub_download(repo, "config.json", cache_dir=cache, local_files_only=True)
    print(p)
    print(f)
elif mode == "upload":
    from huggingface_hub import HfApi
    api = HfApi(endpoint=endpoint, token=allow["token"])
    api.create_repo(repo, exist_ok=True)
    info = api.upload_folder(folder_path=allow["folder"], repo_id=repo, commit_message="python upload")
    print(info.oid)
elif mode == "scan":
    info = scan_cache_dir(cache)
    print(json.dumps({
        "repos": sorted([[r.repo_id, r.repo_type, r.size_on_disk, r.nb_files, sorted(r.refs)] for r in info.repos]),
        "warnings": [str(w) for w in info.warnings],
    }))
`

// python returns a command runner for a Python that imports
// huggingface_hub, or skips the test. MLXGO_HF_HUB_SRC may name a
// huggingface_hub source tree (its src/ folder is put on PYTHONPATH);
// MLXGO_PYTHON picks the interpreter (default python3).
func python(t *testing.T) func(args ...string) (string, error) {
	t.Helper()
	py := os.Getenv("MLXGO_PYTHON")
	if py == "" {
		py = "python3"
	}
	env := append(os.Environ(), "HF_HUB_DISABLE_TELEMETRY=1", "HF_HUB_OFFLINE=", "HF_TOKEN=", "HF_HOME="+t.TempDir())
	if src := os.Getenv("MLXGO_HF_HUB_SRC"); src != "" {
		env = append(env, "PYTHONPATH="+filepath.Join(src, "src"))
	}
	check := exec.Command(py, "-c", "import huggingface_hub")
	check.Env = env
	if out, err := check.CombinedOutput(); err != nil {
		t.Skipf("Python huggingface_hub not available (%s -c 'import huggingface_hub': %v %s); set MLXGO_PYTHON / MLXGO_HF_HUB_SRC to run the interop test", py, err, bytes.TrimSpace(out))
	}
	return func(args ...string) (string, error) {
		cmd := exec.Command(py, append([]string{"-c", pyScript}, args...)...)
		cmd.Env = env
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			t.Logf("python stderr:\n%s", stderr.String())
		}
		return strings.TrimSpace(string(out)), err
	}
}

// cacheTree lists a cache as "path kind detail" lines: links with their
// target, files with their sha256, folders; lock files by name only.
func cacheTree(t *testing.T, root string) []string {
	t.Helper()
	var out []string
	filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			t.Fatal(err)
		}
		rel, _ := filepath.Rel(root, p)
		if rel == "." {
			return nil
		}
		switch {
		case d.Type()&fs.ModeSymlink != 0:
			target, _ := os.Readlink(p)
			out = append(out, rel+" -> "+target)
		case d.IsDir():
			out = append(out, rel+"/")
		default:
			b, _ := os.ReadFile(p)
			sum := sha256.Sum256(b)
			if strings.HasPrefix(rel, ".locks") {
				out = append(out, rel+" (lock)")
			} else {
				out = append(out, rel+" sha256:"+hex.EncodeToString(sum[:8]))
			}
		}
		return nil
	})
	sort.Strings(out)
	return out
}

// TestInteropWithPythonHuggingfaceHub runs Python's huggingface_hub and
// this package against the same fake Hub: both caches must be identical
// (names, symlink targets, refs, blobs, tree listing), each must read the
// other's cache offline, and Python's scan_cache_dir must accept ours.
func TestInteropWithPythonHuggingfaceHub(t *testing.T) {
	py := python(t)
	s := hubtest.New(t)
	files := tinyRepo()
	commit := s.AddRepo("org/tiny", files)
	allow, _ := json.Marshal(DefaultAllowPatterns)

	pyCache := filepath.Join(t.TempDir(), "hub")
	out, err := py("download", s.URL(), pyCache, "org/tiny", string(allow))
	if err != nil {
		t.Fatalf("python snapshot_download: %v", err)
	}
	if want := filepath.Join(pyCache, "models--org--tiny", "snapshots", commit); out != want {
		t.Fatalf("python returned %s, want %s", out, want)
	}

	c := testClient(t, s)
	goCache := c.CacheDir
	goDir, err := c.Snapshot(context.Background(), "org/tiny", SnapshotOptions{AllowPatterns: DefaultAllowPatterns})
	if err != nil {
		t.Fatal(err)
	}

	pyTree, goTree := cacheTree(t, pyCache), cacheTree(t, goCache)
	if strings.Join(pyTree, "\n") != strings.Join(goTree, "\n") {
		t.Errorf("cache layouts differ\npython:\n  %s\nmlxgo:\n  %s", strings.Join(pyTree, "\n  "), strings.Join(goTree, "\n  "))
	}

	// Go reads Python's cache offline.
	c2 := testClient(t, s)
	c2.CacheDir, c2.Offline = pyCache, true
	dir, err := c2.Snapshot(context.Background(), "org/tiny", SnapshotOptions{AllowPatterns: DefaultAllowPatterns})
	if err != nil {
		t.Fatalf("mlxgo offline on python's cache: %v", err)
	}
	for _, p := range tinyAllowed {
		if b, _ := os.ReadFile(filepath.Join(dir, p)); !bytes.Equal(b, files[p]) {
			t.Errorf("%s differs in python's cache", p)
		}
	}

	// Python reads Go's cache offline, and its scanner accepts it.
	out, err = py("offline", s.URL(), goCache, "org/tiny", string(allow))
	if err != nil || out != goDir+"\n"+filepath.Join(goDir, "config.json") {
		t.Fatalf("python offline on mlxgo's cache: %q %v", out, err)
	}
	out, err = py("scan", s.URL(), goCache, "org/tiny", "[]")
	if err != nil {
		t.Fatal(err)
	}
	var scan struct {
		Repos    [][]any  `json:"repos"`
		Warnings []string `json:"warnings"`
	}
	if err := json.Unmarshal([]byte(out), &scan); err != nil {
		t.Fatalf("scan output %q: %v", out, err)
	}
	info, err := ScanCache(goCache)
	if err != nil {
		t.Fatal(err)
	}
	r := info.Repos[0]
	want, _ := json.Marshal([][]any{{r.RepoID, r.RepoType, r.SizeOnDisk, r.NbFiles, r.Refs}})
	got, _ := json.Marshal(scan.Repos)
	if string(got) != string(want) || len(scan.Warnings) != 0 {
		t.Errorf("python scan_cache_dir %s (warnings %v), mlxgo ScanCache %s", got, scan.Warnings, want)
	}
}

// TestPythonUploadsToTheFakeHub checks hubtest's upload side against the
// real client: Python's create_repo + upload_folder (preupload, LFS batch
// with basic and multipart transfers, verify, ndjson commit), then mlxgo
// downloads what Python uploaded.
func TestPythonUploadsToTheFakeHub(t *testing.T) {
	py := python(t)
	for _, chunk := range []int64{0, 64 << 10} {
		s := hubtest.New(t)
		s.Token = "hf_writer"
		s.MultipartChunk = chunk
		dir := t.TempDir()
		local := map[string][]byte{"config.json": []byte(`{"a":1}`), "model.safetensors": randBytes(200_000, 5), "sub/x.txt": []byte("x")}
		for p, b := range local {
			os.MkdirAll(filepath.Join(dir, filepath.Dir(p)), 0o755)
			os.WriteFile(filepath.Join(dir, p), b, 0o644)
		}
		arg, _ := json.Marshal(map[string]string{"token": "hf_writer", "folder": dir})
		out, err := py("upload", s.URL(), "", "me/pyrepo", string(arg))
		if err != nil || out != s.Head("me/pyrepo", "main") {
			t.Fatalf("chunk %d: python upload_folder: %q %v", chunk, out, err)
		}
		if n, want := s.Count("cdn", "PUT", "/upload/"), map[int64]int{0: 1, 64 << 10: 4}[chunk]; n != want {
			t.Errorf("chunk %d: python made %d LFS PUTs, want %d", chunk, n, want)
		}
		c := testClient(t, s)
		snap, err := c.Snapshot(context.Background(), "me/pyrepo", SnapshotOptions{})
		if err != nil {
			t.Fatal(err)
		}
		for p, b := range local {
			if got, _ := os.ReadFile(filepath.Join(snap, p)); !bytes.Equal(got, b) {
				t.Errorf("chunk %d: %s differs", chunk, p)
			}
		}
	}
}
