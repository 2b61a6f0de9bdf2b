package audit

import (
	"bytes"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"io"
	"slices"
)

// SaltSize is the size of a result commitment's salt.
const SaltSize = 32

// Commitment binds an audit entry to a result table without revealing it.
// The Digest and Rows go into the "result" entry's details; the Salt stays
// with the result at the querier (never in the audit chain), so whoever is
// later shown the table and the salt can check it against the entry.
type Commitment struct {
	Digest string `json:"digest"` // "hmac-sha256:<hex>"
	Rows   int    `json:"rows"`
	Salt   []byte `json:"-"`
}

// CommitResult commits to a result table under a fresh salt read from r
// (nil: crypto/rand). A plain hash of a short table of identifiers could be
// reversed by trying every identifier; the secret salt prevents that.
func CommitResult(r io.Reader, columns []string, rows [][]string) (Commitment, error) {
	if r == nil {
		r = rand.Reader
	}
	salt := make([]byte, SaltSize)
	if _, err := io.ReadFull(r, salt); err != nil {
		return Commitment{}, fmt.Errorf("failed to draw a result salt: %w", err)
	}
	return Commitment{Digest: DigestResult(salt, columns, rows), Rows: len(rows), Salt: salt}, nil
}

// CheckResult reports whether columns and rows are the table committed to.
func (c Commitment) CheckResult(columns []string, rows [][]string) bool {
	return hmac.Equal([]byte(DigestResult(c.Salt, columns, rows)), []byte(c.Digest))
}

// DigestResult returns "hmac-sha256:<hex>": HMAC-SHA256 keyed by salt over
// a canonical listing of the table — the column count and names, then the
// row count and each row's cell count and cells, every string prefixed by
// its 8-byte big-endian length. Rows are sorted by their encoding first, so
// the digest names the set of rows revealed, not their order.
func DigestResult(salt []byte, columns []string, rows [][]string) string {
	enc := func(dst []byte, cells []string) []byte {
		dst = binary.BigEndian.AppendUint64(dst, uint64(len(cells)))
		for _, c := range cells {
			dst = binary.BigEndian.AppendUint64(dst, uint64(len(c)))
			dst = append(dst, c...)
		}
		return dst
	}
	encRows := make([][]byte, len(rows))
	for i, r := range rows {
		encRows[i] = enc(nil, r)
	}
	slices.SortFunc(encRows, bytes.Compare)
	m := hmac.New(sha256.New, salt)
	m.Write([]byte("xnode/audit/result/v1\x00"))
	m.Write(enc(nil, columns))
	m.Write(binary.BigEndian.AppendUint64(nil, uint64(len(rows))))
	for _, r := range encRows {
		m.Write(r)
	}
	return "hmac-sha256:" + hex.EncodeToString(m.Sum(nil))
}
