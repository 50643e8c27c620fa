package tokenizer

import (
	"encoding/json"
	"reflect"
	"testing"
)

func TestScanVocabAndMerges(t *testing.T) {
	raw := `{ "a": 0, "\"q\"": 1, "back\\slash": 2, "\u00e9\ud83d\ude00": 3, "Ġthe" :4 ,"\n":5}`
	got, err := scanVocab([]byte(raw))
	if err != nil {
		t.Fatal(err)
	}
	var want map[string]int
	if err := json.Unmarshal([]byte(raw), &want); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("scanVocab = %v, want %v", got, want)
	}
	for _, m := range []string{`["a b", "\u0120 t"]`, `[["a", "b"], ["\u0120", "t"]]`} {
		got, err := scanMerges([]byte(m))
		if err != nil {
			t.Fatal(err)
		}
		if want := [][2]string{{"a", "b"}, {"Ġ", "t"}}; !reflect.DeepEqual(got, want) {
			t.Errorf("scanMerges(%s) = %q", m, got)
		}
	}
	for _, bad := range []string{`{"a": "x"}`, `{"a" 1}`, `{"a": 1`, `["ab"]`, `[["a"]]`, `[1]`} {
		_, err1 := scanVocab([]byte(bad))
		_, err2 := scanMerges([]byte(bad))
		if err1 == nil && err2 == nil {
			t.Errorf("%s accepted", bad)
		}
	}
}
