package audit_test

import (
	"bytes"
	"strings"
	"testing"

	"xnode/node/audit"
)

func TestCommitResult(t *testing.T) {
	cols := []string{"id", "risk"}
	rows := [][]string{{"cn_id:110101199003074477", "high"}, {"cn_id:11010119900307003X", "low"}}
	c, err := audit.CommitResult(nil, cols, rows)
	if err != nil {
		t.Fatal(err)
	}
	if c.Rows != 2 || len(c.Salt) != audit.SaltSize || !strings.HasPrefix(c.Digest, "hmac-sha256:") {
		t.Fatalf("CommitResult = %+v, want 2 rows, a %d-byte salt and an hmac-sha256 digest", c, audit.SaltSize)
	}
	if !c.CheckResult(cols, [][]string{rows[1], rows[0]}) {
		t.Error("CheckResult(same rows, other order) = false, want true")
	}
	tests := []struct {
		name string
		cols []string
		rows [][]string
	}{
		{"row changed", cols, [][]string{rows[0], {"cn_id:11010119900307003X", "high"}}},
		{"row dropped", cols, rows[:1]},
		{"column renamed", []string{"id", "level"}, rows},
		{"cells shifted", cols, [][]string{{"cn_id:110101199003074477high", ""}, rows[1]}},
		{"no rows", cols, nil},
	}
	for _, tt := range tests {
		if c.CheckResult(tt.cols, tt.rows) {
			t.Errorf("%s: CheckResult = true, want false", tt.name)
		}
	}
	c2, err := audit.CommitResult(bytes.NewReader(bytes.Repeat([]byte{7}, 32)), cols, rows)
	if err != nil {
		t.Fatal(err)
	}
	if c2.Digest == c.Digest {
		t.Error("two salts gave the same digest; the salt must key the digest")
	}
	if _, err := audit.CommitResult(bytes.NewReader([]byte{1, 2}), cols, rows); err == nil {
		t.Error("CommitResult with a short salt source succeeded, want an error")
	}
}
