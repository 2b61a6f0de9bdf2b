package audit

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"

	"xnode/node/store"
)

// Problem names what is wrong with an entry.
type Problem string

// The problems Verify reports.
const (
	ProblemUnreadable Problem = "unreadable"       // the stored bytes are not an entry
	ProblemWrongKey   Problem = "wrong key"        // stored under a key other than its sequence number
	ProblemGap        Problem = "sequence gap"     // one or more entries before it are missing
	ProblemHash       Problem = "hash mismatch"    // its fields do not hash to its Hash
	ProblemSignature  Problem = "bad signature"    // Sig is not the node key's signature over Hash
	ProblemLink       Problem = "broken link"      // Prev is not the previous entry's Hash
	ProblemHead       Problem = "head mismatch"    // the head record disagrees with the last entry
	ProblemStrayKey   Problem = "unexpected key"   // a key in the audit bucket that is no entry
	ProblemSigner     Problem = "wrong signer"     // signed in another node's name
	ProblemHeadSig    Problem = "bad head record"  // the head record is unreadable or unsigned
	ProblemTruncated  Problem = "missing entries"  // the head names entries that are gone
	ProblemNoEntries  Problem = "empty with head"  // a head record but no entries
	ProblemOutOfOrder Problem = "sequence reorder" // a sequence number smaller than the one before
)

// Bad names the first bad entry Verify found.
type Bad struct {
	// Seq is the sequence number (the store key) of the bad entry.
	Seq     uint64  `json:"seq"`
	Problem Problem `json:"problem"`
	Detail  string  `json:"detail"`
}

func (b *Bad) String() string {
	return fmt.Sprintf("entry %d: %s: %s", b.Seq, b.Problem, b.Detail)
}

// Report is the outcome of a verification.
type Report struct {
	OK bool `json:"ok"`
	// Entries is the number of entries checked.
	Entries uint64 `json:"entries"`
	// Head is the hash of the last good entry, hex.
	Head string `json:"head,omitempty"`
	// FirstBad is nil when OK.
	FirstBad *Bad `json:"first_bad,omitempty"`
}

// ErrChainBroken is returned by Report.Err for a chain that did not verify.
var ErrChainBroken = errors.New("audit chain does not verify")

// Err returns nil for a good chain and an error wrapping ErrChainBroken
// that names the first bad entry otherwise.
func (r Report) Err() error {
	if r.OK {
		return nil
	}
	return fmt.Errorf("%w: %s", ErrChainBroken, r.FirstBad)
}

// verifier checks entries one at a time, in key order.
type verifier struct {
	pub    ed25519.PublicKey
	signer string // expected Signer; empty accepts any
	prev   []byte
	seq    uint64
	rep    Report
}

func newVerifier(pub ed25519.PublicKey, signer string) *verifier {
	return &verifier{pub: pub, signer: signer, prev: make([]byte, sha256.Size)}
}

func (v *verifier) fail(seq uint64, p Problem, format string, args ...any) bool {
	v.rep.FirstBad = &Bad{Seq: seq, Problem: p, Detail: fmt.Sprintf(format, args...)}
	return false
}

// next checks the entry stored at key seq; false means stop.
func (v *verifier) next(seq uint64, e *Entry) bool {
	want := v.seq + 1
	switch {
	case seq < want:
		return v.fail(seq, ProblemOutOfOrder, "follows entry %d", v.seq)
	case seq > want:
		return v.fail(seq, ProblemGap, "entries %d to %d are missing", want, seq-1)
	case e.Seq != seq:
		return v.fail(seq, ProblemWrongKey, "stored at %d but says it is entry %d", seq, e.Seq)
	}
	if h := e.ComputeHash(); !bytes.Equal(h, e.Hash) {
		return v.fail(seq, ProblemHash, "its fields hash to %x, the entry says %x", h[:8], prefix(e.Hash))
	}
	if v.signer != "" && e.Signer != v.signer {
		return v.fail(seq, ProblemSigner, "signed as %s, this node is %s", e.Signer, v.signer)
	}
	if len(e.Sig) != ed25519.SignatureSize || !ed25519.Verify(v.pub, e.Hash, e.Sig) {
		return v.fail(seq, ProblemSignature, "the signature is not by key %x", prefix(v.pub))
	}
	if !bytes.Equal(e.Prev, v.prev) {
		return v.fail(seq, ProblemLink, "prev is %x, entry %d has hash %x", prefix(e.Prev), v.seq, prefix(v.prev))
	}
	v.prev, v.seq = e.Hash, seq
	v.rep.Entries++
	v.rep.Head = hex.EncodeToString(e.Hash)
	return true
}

func (v *verifier) report() Report {
	v.rep.OK = v.rep.FirstBad == nil
	return v.rep
}

func prefix(b []byte) []byte {
	if len(b) > 8 {
		return b[:8]
	}
	return b
}

// Verify walks the whole chain in one read transaction and checks every
// entry's key, sequence, hash, signer, signature and link, then the head
// record. The returned error is for failures to read the store; a chain
// that does not verify gives a Report with OK false (see Report.Err).
func (l *Log) Verify(ctx context.Context) (Report, error) {
	if err := ctx.Err(); err != nil {
		return Report{}, err
	}
	v := newVerifier(l.pub, l.id.ID().String())
	var headVal []byte
	err := l.st.View(func(tx *store.Tx) error {
		return tx.ForEach(store.Audit, func(k, val []byte) error {
			if bytes.Equal(k, headKey) {
				headVal = val
				return nil
			}
			if v.rep.FirstBad != nil {
				return errStop
			}
			if len(k) != 8 {
				v.fail(v.seq+1, ProblemStrayKey, "key %x in the audit bucket is not a sequence number", k)
				return errStop
			}
			seq, _ := store.DecodeUint64(k)
			var e Entry
			if err := json.Unmarshal(val, &e); err != nil {
				v.fail(seq, ProblemUnreadable, "%v", err)
				return errStop
			}
			if !v.next(seq, &e) {
				return errStop
			}
			if v.seq%1024 == 0 {
				return ctx.Err()
			}
			return nil
		})
	})
	if err != nil && !errors.Is(err, errStop) {
		return Report{}, fmt.Errorf("failed to read the audit chain: %w", err)
	}
	if v.rep.FirstBad == nil {
		v.checkHead(headVal)
	}
	return v.report(), nil
}

// checkHead compares the head record with the last verified entry.
func (v *verifier) checkHead(val []byte) {
	if val == nil {
		if v.seq != 0 {
			v.fail(v.seq, ProblemHeadSig, "the head record is missing")
		}
		return
	}
	var h head
	if err := json.Unmarshal(val, &h); err != nil {
		v.fail(v.seq, ProblemHeadSig, "the head record is unreadable: %v", err)
		return
	}
	if !ed25519.Verify(v.pub, h.message(), h.Sig) {
		v.fail(v.seq, ProblemHeadSig, "the head record's signature is not by key %x", prefix(v.pub))
		return
	}
	switch {
	case v.seq == 0:
		v.fail(h.Seq, ProblemNoEntries, "the head names entry %d but the chain is empty", h.Seq)
	case h.Seq > v.seq:
		v.fail(v.seq+1, ProblemTruncated, "the head names entry %d but the chain ends at %d", h.Seq, v.seq)
	case h.Seq < v.seq || !bytes.Equal(h.Hash, v.prev):
		v.fail(v.seq, ProblemHead, "the head names entry %d with hash %x, the chain ends at %d with %x",
			h.Seq, prefix(h.Hash), v.seq, prefix(v.prev))
	}
}

// VerifyEntries checks an exported chain (all of it, from entry 1, in
// order) against the signing node's public key. There is no head record in
// an export: compare Report.Head with a head obtained elsewhere to detect a
// cut-off end.
func VerifyEntries(entries []Entry, pub ed25519.PublicKey) Report {
	v := newVerifier(pub, "")
	for i := range entries {
		if !v.next(entries[i].Seq, &entries[i]) {
			break
		}
	}
	return v.report()
}
