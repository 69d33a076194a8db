package store

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"
)

func TestValidSegment(t *testing.T) {
	for s, want := range map[string]bool{
		"model.safetensors": true, "a": true, "A-b_c.9": true, "x..y": true,
		"": false, ".": false, "..": false, ".hidden": false, "a/b": false, `a\b`: false,
		"a%2fb": false, "a\x00": false, "a b": false, "é": false, "a:b": false,
		string(make([]byte, MaxSegment+1)): false,
	} {
		if got := ValidSegment(s); got != want {
			t.Errorf("ValidSegment(%q) = %v, want %v", s, got, want)
		}
	}
}

func TestDir(t *testing.T) {
	top := t.TempDir()
	root := filepath.Join(top, "m")
	os.MkdirAll(filepath.Join(root, "tiny", "sub"), 0o755)
	os.WriteFile(filepath.Join(top, "secret"), []byte("SECRET"), 0o644)
	os.WriteFile(filepath.Join(root, "tiny", "a.bin"), []byte("0123456789"), 0o644)
	d, err := OpenDir(root)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	ctx := t.Context()
	for _, key := range []string{"../secret", "tiny/../../secret", "tiny", "tiny/sub", "tiny/missing", "/etc/passwd", "tiny/a.bin/x", ""} {
		if _, err := d.Head(ctx, key); !errors.Is(err, ErrNotFound) {
			t.Errorf("Head(%q): %v, want ErrNotFound", key, err)
		}
		if _, err := d.Get(ctx, key, nil, ""); !errors.Is(err, ErrNotFound) {
			t.Errorf("Get(%q): %v, want ErrNotFound", key, err)
		}
	}
	info, err := d.Head(ctx, "tiny/a.bin")
	if err != nil || info.Size != 10 {
		t.Fatalf("Head: %+v %v", info, err)
	}
	obj, err := d.Get(ctx, "tiny/a.bin", &Range{Offset: 3, Length: 4}, info.ETag)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(obj.Body)
	obj.Body.Close()
	if string(b) != "3456" {
		t.Errorf("range body %q", b)
	}
	if _, err := d.Get(ctx, "tiny/a.bin", nil, `"other"`); !errors.Is(err, ErrChanged) {
		t.Errorf("Get with a stale etag: %v, want ErrChanged", err)
	}
	if _, err := d.Get(ctx, "tiny/a.bin", &Range{Offset: 8, Length: 4}, ""); err == nil {
		t.Error("Get past the end succeeded")
	}
	list, err := d.List(ctx, "tiny")
	if err != nil || len(list) != 1 || list[0].SHA256 != "84d89877f0d4041efb6bf91a16f0248f2fd573e6af05c19f96bedb9f882f7882" {
		t.Errorf("List: %+v %v", list, err)
	}
}
