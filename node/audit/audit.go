package audit

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"time"

	"xnode/node/identity"
	"xnode/node/store"
)

// Kind says what an entry records.
type Kind string

// The kinds of entries the node writes. Other lower-case, hyphenated kinds
// are accepted too, so a new event needs no change here.
const (
	KindProposal     Kind = "proposal"      // a query was proposed (by us or to us)
	KindApproval     Kind = "approval"      // a query was approved, by rule or by a person
	KindDenial       Kind = "denial"        // a query was denied, with the rule and reason
	KindRun          Kind = "run"           // a protocol run started
	KindResult       Kind = "result"        // a run finished: what was revealed to whom
	KindFailure      Kind = "failure"       // a run failed or expired
	KindImport       Kind = "import"        // a dataset version was imported
	KindDrop         Kind = "drop"          // a dataset was dropped
	KindPolicyChange Kind = "policy-change" // policy.toml was loaded or changed
	KindMembership   Kind = "membership"    // certificate, admission or revocation event
	KindPeerRefused  Kind = "peer-refused"  // a peer was refused at connect or on a stream
)

// ActorLocal is the actor of entries caused by this node's own operator.
const ActorLocal = "local"

// Kinds lists the kinds this package names, in a stable order.
func Kinds() []Kind {
	return []Kind{KindProposal, KindApproval, KindDenial, KindRun, KindResult, KindFailure,
		KindImport, KindDrop, KindPolicyChange, KindMembership, KindPeerRefused}
}

var kindPattern = regexp.MustCompile(`^[a-z][a-z0-9]*(-[a-z0-9]+)*$`)

// Entry is one record of the audit chain.
type Entry struct {
	// Seq is the entry's position, 1 for the first.
	Seq uint64 `json:"seq"`
	// Time is when the node appended it (UTC, nanoseconds).
	Time time.Time `json:"time"`
	Kind Kind      `json:"kind"`
	// QueryID is the query the entry is about, if any.
	QueryID string `json:"query_id,omitempty"`
	// Actor is who caused the event: a peer ID or name, or "local".
	Actor string `json:"actor"`
	// Signer is the peer ID of the node that signed the entry.
	Signer string `json:"signer"`
	// Details is a canonical JSON object; see the package doc for what
	// belongs in it.
	Details json.RawMessage `json:"details,omitempty"`
	// Prev is the previous entry's hash (32 zero bytes for the first).
	Prev []byte `json:"prev"`
	// Hash is ComputeHash of the fields above.
	Hash []byte `json:"hash"`
	// Sig is the signer's Ed25519 signature over Hash.
	Sig []byte `json:"sig"`
}

// Filter selects entries for List. Zero fields select everything.
type Filter struct {
	QueryID string
	Kind    Kind
	// Since keeps entries at or after this time.
	Since time.Time
	// AfterSeq keeps entries with a larger sequence number (for paging).
	AfterSeq uint64
	// Limit caps the number of entries returned (0: no cap). Without Tail
	// the first Limit matches are kept, with Tail the last Limit; either
	// way they are returned oldest first.
	Limit int
	Tail  bool
}

// ErrInvalidEntry is wrapped by Append for an entry it refuses.
var ErrInvalidEntry = errors.New("invalid audit entry")

// hashDomain separates entry hashes from every other SHA-256 in xnode.
const hashDomain = "xnode/audit/entry/v1"

// headKey holds the signed head record. One byte sorts before every 8-byte
// sequence key.
var headKey = []byte{0x00}

// Log appends to and reads the audit chain. It is safe for concurrent use:
// appends are serialised by the store's single write transaction.
type Log struct {
	st  *store.Store
	id  *identity.Identity
	pub ed25519.PublicKey
	log *slog.Logger
	now func() time.Time
}

// New returns the audit log kept in st and signed by id. log may be nil.
func New(st *store.Store, id *identity.Identity, log *slog.Logger) *Log {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Log{st: st, id: id, pub: id.PublicKey(), log: log, now: time.Now}
}

// PublicKey returns the key entries are verified against.
func (l *Log) PublicKey() ed25519.PublicKey { return l.pub }

// Append fills in e's Seq, Time (if zero), Signer, Prev, Hash and Sig, and
// stores it as the new head of the chain in one transaction. Details must
// be a JSON object (or empty); it is stored canonically.
func (l *Log) Append(ctx context.Context, e Entry) (Entry, error) {
	if err := ctx.Err(); err != nil {
		return Entry{}, err
	}
	if !kindPattern.MatchString(string(e.Kind)) {
		return Entry{}, fmt.Errorf("%w: kind %q is not a lower-case, hyphenated word", ErrInvalidEntry, e.Kind)
	}
	if e.Actor == "" {
		return Entry{}, fmt.Errorf("%w: actor is empty (use %q for this node's operator)", ErrInvalidEntry, ActorLocal)
	}
	details, err := canonicalDetails(e.Details)
	if err != nil {
		return Entry{}, fmt.Errorf("%w: %v", ErrInvalidEntry, err)
	}
	e.Details = details
	if e.Time.IsZero() {
		e.Time = l.now()
	}
	e.Time = e.Time.UTC().Round(0)
	e.Signer = l.id.ID().String()

	err = l.st.Update(func(tx *store.Tx) error {
		h, err := readHead(tx)
		if err != nil {
			return err
		}
		e.Seq = h.Seq + 1
		e.Prev = h.Hash
		e.Hash = e.ComputeHash()
		e.Sig = l.id.Sign(e.Hash)
		val, err := json.Marshal(e)
		if err != nil {
			return err
		}
		if err := tx.Put(store.Audit, store.EncodeUint64(e.Seq), val); err != nil {
			return err
		}
		return writeHead(tx, l.id, head{Seq: e.Seq, Hash: e.Hash})
	})
	if err != nil {
		return Entry{}, fmt.Errorf("failed to append %s audit entry: %w", e.Kind, err)
	}
	l.log.Debug("audit entry appended", "seq", e.Seq, "kind", e.Kind, "query", e.QueryID, "actor", e.Actor)
	return e, nil
}

// List returns the entries f selects, oldest first. It reads entries as
// stored and does not verify them; use Verify for that.
func (l *Log) List(ctx context.Context, f Filter) ([]Entry, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	var out []Entry
	err := l.st.ForEach(store.Audit, func(k, v []byte) error {
		if len(k) != 8 {
			return nil
		}
		var e Entry
		if err := json.Unmarshal(v, &e); err != nil {
			seq, _ := store.DecodeUint64(k)
			return fmt.Errorf("audit entry %d is unreadable (run `xnode audit verify`): %w", seq, err)
		}
		if !f.match(e) {
			return nil
		}
		out = append(out, e)
		if f.Limit > 0 && len(out) > f.Limit {
			if f.Tail {
				out = out[1:]
			} else {
				out = out[:f.Limit]
				return errStop
			}
		}
		return nil
	})
	if err != nil && !errors.Is(err, errStop) {
		return nil, fmt.Errorf("failed to list audit entries: %w", err)
	}
	return out, nil
}

var errStop = errors.New("stop")

func (f Filter) match(e Entry) bool {
	switch {
	case f.QueryID != "" && e.QueryID != f.QueryID:
		return false
	case f.Kind != "" && e.Kind != f.Kind:
		return false
	case !f.Since.IsZero() && e.Time.Before(f.Since):
		return false
	case e.Seq <= f.AfterSeq:
		return false
	}
	return true
}

// ComputeHash returns SHA-256 over the canonical, length-prefixed encoding
// of every field except Hash and Sig.
func (e *Entry) ComputeHash() []byte {
	var buf bytes.Buffer
	field := func(b []byte) {
		var n [8]byte
		binary.BigEndian.PutUint64(n[:], uint64(len(b)))
		buf.Write(n[:])
		buf.Write(b)
	}
	u64 := func(v uint64) []byte { return binary.BigEndian.AppendUint64(nil, v) }
	field([]byte(hashDomain))
	field(u64(e.Seq))
	field(u64(uint64(e.Time.UnixNano())))
	field([]byte(e.Kind))
	field([]byte(e.QueryID))
	field([]byte(e.Actor))
	field([]byte(e.Signer))
	field(e.Details)
	field(e.Prev)
	sum := sha256.Sum256(buf.Bytes())
	return sum[:]
}

// Details encodes v (a struct or map) as canonical JSON for Entry.Details.
func Details(v any) (json.RawMessage, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("failed to encode audit details: %w", err)
	}
	return canonicalDetails(b)
}

// canonicalDetails re-encodes a JSON object with sorted keys, no spaces
// and no HTML escaping; numbers keep their literal text. Empty stays empty.
func canonicalDetails(raw []byte) ([]byte, error) {
	if len(bytes.TrimSpace(raw)) == 0 {
		return nil, nil
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, fmt.Errorf("details are not JSON: %v", err)
	}
	if dec.More() {
		return nil, errors.New("details hold more than one JSON value")
	}
	if _, ok := v.(map[string]any); !ok {
		return nil, errors.New("details must be a JSON object")
	}
	var out bytes.Buffer
	enc := json.NewEncoder(&out)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimRight(out.Bytes(), "\n"), nil
}

// head is the signed record of the chain's last entry.
type head struct {
	Seq  uint64 `json:"seq"`
	Hash []byte `json:"hash"`
	Sig  []byte `json:"sig"`
}

const headDomain = "xnode/audit/head/v1"

func (h head) message() []byte {
	m := append([]byte(headDomain), 0)
	m = binary.BigEndian.AppendUint64(m, h.Seq)
	return append(m, h.Hash...)
}

// readHead returns the head, or the empty chain's head (seq 0, zero hash).
func readHead(tx *store.Tx) (head, error) {
	v, err := tx.Get(store.Audit, headKey)
	if errors.Is(err, store.ErrNotFound) {
		return head{Hash: make([]byte, sha256.Size)}, nil
	}
	if err != nil {
		return head{}, err
	}
	var h head
	if err := json.Unmarshal(v, &h); err != nil {
		return head{}, fmt.Errorf("the audit head record is unreadable (run `xnode audit verify`): %w", err)
	}
	if len(h.Hash) != sha256.Size {
		return head{}, errors.New("the audit head record is corrupt (run `xnode audit verify`)")
	}
	return h, nil
}

func writeHead(tx *store.Tx, id *identity.Identity, h head) error {
	h.Sig = id.Sign(h.message())
	v, err := json.Marshal(h)
	if err != nil {
		return err
	}
	return tx.Put(store.Audit, headKey, v)
}
