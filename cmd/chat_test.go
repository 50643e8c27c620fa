package cmd

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"os"
	"os/exec"
	"regexp"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/mlxgo/mlxgo/pkg/generate"
	"github.com/mlxgo/mlxgo/pkg/generate/gentest"
	"github.com/mlxgo/mlxgo/pkg/model"
	"github.com/mlxgo/mlxgo/pkg/tokenizer"
)

// reply runs one chat turn with pkg/generate on caches (fresh when nil)
// and returns the text, every token the model produced and the caches.
func reply(t *testing.T, m model.Model, caches []model.Cache, query string, maxTokens int) (string, []int, []model.Cache) {
	t.Helper()
	tok, err := tokenizer.Load(tokenizerFixture)
	if err != nil {
		t.Fatal(err)
	}
	ids, err := generate.ChatTurn(tok, "", query)
	if err != nil {
		t.Fatal(err)
	}
	g, err := generate.New(m, ids, generate.Options{MaxTokens: maxTokens, Caches: caches})
	if err != nil {
		t.Fatal(err)
	}
	var text strings.Builder
	var toks []int
	if err := generate.Stream(context.Background(), g, tok, func(r generate.Response) error {
		text.WriteString(r.Text)
		toks = append(toks, r.Token)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if err := g.Commit(); err != nil {
		t.Fatal(err)
	}
	return text.String(), append(ids, toks...), g.Caches()
}

const chatHelp = "The command list:\n- 'q' to exit\n- 'r' to reset the chat\n- 'h' to display these commands\n"

func TestChatScriptedSession(t *testing.T) {
	dir := fakeModelDir(t, 4096)
	code, out, errOut := runWith(t, "hello\nh\nhi\nr\nhi\nq\nnever read\n", "chat", "--model", dir, "-m", "20")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	m := gentest.New(512, 16, 1)
	r1, ids1, caches := reply(t, m, nil, "hello", 20)
	r2, _, _ := reply(t, m, caches, "hi", 20)
	r3, _, _ := reply(t, m, nil, "hi", 20)
	want := "[INFO] Starting chat session with " + dir + ".\n" + chatHelp +
		">> " + r1 + "\n>> " + chatHelp + ">> " + r2 + "\n>> >> " + r3 + "\n>> "
	if out != want {
		t.Fatalf("session output\n%q\nwant\n%q", out, want)
	}
	if r2 == r3 {
		t.Fatalf("the second turn ignores the first (same reply %q with and without history)", r2)
	}
	// History lives in the KV cache: the second turn equals one fresh run
	// over turn 1, its reply (every token) and turn 2.
	tok, _ := tokenizer.Load(tokenizerFixture)
	turn2, _ := generate.ChatTurn(tok, "", "hi")
	g, _ := generate.New(m, append(ids1, turn2...), generate.Options{MaxTokens: 20})
	var fresh strings.Builder
	if err := generate.Stream(context.Background(), g, tok, func(r generate.Response) error { fresh.WriteString(r.Text); return nil }); err != nil {
		t.Fatal(err)
	}
	if fresh.String() != r2 {
		t.Fatalf("second turn %q, a fresh run over the whole conversation %q", r2, fresh.String())
	}
}

func TestChatInterruptStopsReplyOnly(t *testing.T) {
	dir := fakeModelDir(t, 4096)
	sig := make(chan os.Signal, 1)
	old := chatSignals
	chatSignals = func() (<-chan os.Signal, func()) { return sig, func() {} }
	t.Cleanup(func() { chatSignals = old })
	m := gentest.New(512, 16, 1)
	m.OnForward = func(call int) {
		if call == 8 { // the 7th decode step of the first reply
			sig <- os.Interrupt
		}
	}
	fakeModels.Store(dir, m)
	t.Cleanup(func() { fakeModels.Delete(dir) })

	code, out, errOut := runWith(t, "hello\nhi\nq\n", "chat", "--model", dir, "-m", "200")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	full, _, _ := reply(t, gentest.New(512, 16, 1), nil, "hello", 200)
	re := regexp.MustCompile(`(?s)^\[INFO\][^\n]*\n` + regexp.QuoteMeta(chatHelp) + `>> (.*)\n>> (.*)\n>> $`)
	got := re.FindStringSubmatch(out)
	if got == nil {
		t.Fatalf("session output %q", out)
	}
	if len(got[1]) >= len(full) || !strings.HasPrefix(full, got[1]) || len(got[1]) < 6 {
		t.Fatalf("interrupted reply %q is not a short prefix of the full reply %q", got[1], full)
	}
	if got[2] == "" {
		t.Fatalf("no second reply after the interrupt: %q", out)
	}
}

// TestChatSIGINT runs the real command in a child process and sends it
// SIGINT in the middle of a long reply: the reply stops, the REPL asks for
// the next message, and 'q' ends the session normally.
func TestChatSIGINT(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("no SIGINT on windows")
	}
	c := exec.Command(os.Args[0], "chat", "--model", "../testdata/models/llama-f32", "-m", "1000000")
	c.Env = append(os.Environ(), "MLXGO_TEST_MAIN=1")
	stdin, err := c.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := c.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	c.Stderr = &stderr
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	defer c.Process.Kill()
	out := bufio.NewReader(stdout)
	var seen strings.Builder
	readUntil := func(what string) {
		t.Helper()
		deadline := time.Now().Add(60 * time.Second)
		for !strings.HasSuffix(seen.String(), what) {
			if time.Now().After(deadline) {
				t.Fatalf("no %q in the output %q (stderr %q)", what, seen.String(), stderr.String())
			}
			r, _, err := out.ReadRune()
			if err != nil {
				t.Fatalf("reading the output: %v; so far %q (stderr %q)", err, seen.String(), stderr.String())
			}
			seen.WriteRune(r)
		}
	}
	readUntil(">> ")
	io.WriteString(stdin, "hello\n")
	start := seen.Len()
	for seen.Len()-start < 40 { // some of the reply has streamed
		r, _, err := out.ReadRune()
		if err != nil {
			t.Fatal(err)
		}
		seen.WriteRune(r)
	}
	if err := c.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	readUntil("\n>> ")
	io.WriteString(stdin, "q\n")
	stdin.Close()
	rest, _ := io.ReadAll(out)
	if err := c.Wait(); err != nil {
		t.Fatalf("chat did not exit cleanly after the interrupt and 'q': %v (stderr %q)", err, stderr.String())
	}
	if len(rest) != 0 || stderr.Len() != 0 {
		t.Fatalf("after 'q': stdout %q, stderr %q", rest, stderr.String())
	}
	if n := seen.Len() - start; n > 100000 {
		t.Fatalf("the reply ran to %d bytes: SIGINT did not stop it", n)
	}
}
