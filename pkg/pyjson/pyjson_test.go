package pyjson

import (
	"testing"
)

// Expected strings are what CPython 3.11 prints for repr(float) / json.dumps.
func TestFloatRepr(t *testing.T) {
	cases := map[float64]string{
		1e-5:    "1e-05",
		1e-4:    "0.0001",
		20:      "20.0",
		0.1:     "0.1",
		1e16:    "1e+16",
		1e15:    "1000000000000000.0",
		1.5e-7:  "1.5e-07",
		-2.5:    "-2.5",
		0:       "0.0",
		123.456: "123.456",
		1e100:   "1e+100",
		1e22:    "1e+22",
		0.00123: "0.00123",
	}
	for f, want := range cases {
		if got := FloatRepr(f); got != want {
			t.Errorf("FloatRepr(%v) = %q, want %q", f, got, want)
		}
	}
}

func TestRoundTripKeepsOrderAndNumbers(t *testing.T) {
	in := `{"z": 1, "a": {"y": 2.0, "b": [1, 1e-05, "é😀\n"]}, "m": null, "t": true, "e": {}, "l": []}`
	v, err := Decode([]byte(in))
	if err != nil {
		t.Fatal(err)
	}
	got, err := Marshal(v, Options{})
	if err != nil {
		t.Fatal(err)
	}
	want := `{"z": 1, "a": {"y": 2.0, "b": [1, 1e-05, "\u00e9\ud83d\ude00\n"]}, "m": null, "t": true, "e": {}, "l": []}`
	if string(got) != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
	sorted, _ := Marshal(v, Options{Indent: 4, SortKeys: true})
	wantIndent := `{
    "a": {
        "b": [
            1,
            1e-05,
            "\u00e9\ud83d\ude00\n"
        ],
        "y": 2.0
    },
    "e": {},
    "l": [],
    "m": null,
    "t": true,
    "z": 1
}`
	if string(sorted) != wantIndent {
		t.Errorf("indented:\n%s\nwant:\n%s", sorted, wantIndent)
	}
}

func TestObjectEdits(t *testing.T) {
	o := NewObject()
	o.Set("b", 1)
	o.Set("a", 2)
	o.Set("b", 3)
	o.Delete("a")
	o.Delete("missing")
	got, _ := Marshal(o, Options{})
	if string(got) != `{"b": 3}` {
		t.Fatalf("got %s", got)
	}
	if _, err := Decode([]byte(`{"a": 1} x`)); err == nil {
		t.Fatal("trailing data accepted")
	}
}
