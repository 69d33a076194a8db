package main

import (
	"os"
	"path/filepath"
	"testing"
)

func TestScanCountsLines(t *testing.T) {
	dir := t.TempDir()
	src := `//go:build js && wasm

package p

type T struct{}

// Long has a doc comment, which does not count.
func Long() {
	a := 1
	_ = a
}

func (t *T) Short() {}

var f = func() {
	// a func literal is not a declaration
}
`
	if err := os.WriteFile(filepath.Join(dir, "p.go"), []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(dir, "testdata"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "testdata", "skip.go"), []byte("package x\nfunc Skipped() {\n}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	fns, err := scan(dir)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]int{}
	for _, f := range fns {
		got[f.name] = f.lines
	}
	want := map[string]int{"Long": 4, "T.Short": 1}
	if len(got) != len(want) || got["Long"] != 4 || got["T.Short"] != 1 {
		t.Fatalf("scan = %v, want %v (testdata skipped)", got, want)
	}
}
