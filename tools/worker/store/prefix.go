package store

import (
	"fmt"
	"strings"
)

// checkPrefix accepts "" or segments of ValidSegment each followed by "/" ("models/",
// "org/models/"): a prefix that cannot itself point elsewhere.
func checkPrefix(prefix string) error {
	if prefix == "" {
		return nil
	}
	if !strings.HasSuffix(prefix, "/") {
		return fmt.Errorf("store: prefix %q must end with /", prefix)
	}
	for _, seg := range strings.Split(strings.TrimSuffix(prefix, "/"), "/") {
		if !ValidSegment(seg) {
			return fmt.Errorf("store: prefix %q: segment %q is not [A-Za-z0-9._-] (or starts with a dot)", prefix, seg)
		}
	}
	return nil
}

func isSHA256Hex(s string) bool {
	if len(s) != 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}
