package jsapi

import (
	"fmt"
	"strings"
	"testing"

	"github.com/nibble-ml/nibble/wasm/errs"
)

func TestDescribe(t *testing.T) {
	cases := []struct {
		url  string
		err  error
		code string
		has  []string
	}{
		{"https://h/models/m", fmt.Errorf("load: GET https://h/models/m: 404: %w", errs.ErrNotFound), "NOT_FOUND",
			[]string{"check the URL", "ends with a slash (https://h/models/m/)"}},
		{"https://h/models/m/", fmt.Errorf("load: %w", errs.ErrNotFound), "NOT_FOUND", []string{"check the URL"}},
		{"", errs.Mark(fmt.Errorf(`format "q5-sym-g32": bits`), errs.ErrBadArgument), "BAD_ARGUMENT", []string{`format "q5-sym-g32"`}},
		{"", fmt.Errorf("embed: %w", errs.ErrModel), "UNSUPPORTED_MODEL", []string{"cannot run it whole"}},
		{"", fmt.Errorf("over: %w", errs.ErrTooLarge), "OUT_OF_MEMORY", []string{"memoryBudget"}},
		{"", fmt.Errorf("boom"), "INTERNAL", []string{"report it"}},
	}
	for _, c := range cases {
		f := Describe("load", c.url, c.err)
		if f.Code != c.code || f.Chain != c.err.Error() || strings.Contains(f.Message, "\n") || !strings.HasPrefix(f.Message, "load: ") {
			t.Errorf("%v: %+v", c.err, f)
		}
		for _, h := range c.has {
			if !strings.Contains(f.Message, h) {
				t.Errorf("%v: message %q lacks %q", c.err, f.Message, h)
			}
		}
		if c.url == "https://h/models/m/" && strings.Contains(f.Message, "slash") {
			t.Errorf("a URL with its slash got the slash hint: %q", f.Message)
		}
	}
}
