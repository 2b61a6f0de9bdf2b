package audit

import (
	"bufio"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"xnode/node/store"
)

// FormatJSONL is the export format: one entry per line, as JSON, oldest
// first. Hash, Prev and Sig are base64 (encoding/json's form of []byte);
// Details are the canonical bytes that were hashed.
const FormatJSONL = "jsonl"

// exportBlock is how many sequence numbers one read transaction covers, so
// a slow writer never pins the database for the whole export.
const exportBlock = 256

// Export writes every stored entry to w in format (only "jsonl"). It does
// not verify them; an export can be checked with ReadJSONL and
// VerifyEntries.
func (l *Log) Export(ctx context.Context, w io.Writer, format string) error {
	if format != FormatJSONL {
		return fmt.Errorf("unknown audit export format %q; use %q", format, FormatJSONL)
	}
	// The last entry is under the bucket's last key, unless a stray key
	// sorts after it; the head record names it too.
	var last uint64
	if err := l.st.View(func(tx *store.Tx) error {
		h, err := readHead(tx)
		if err != nil {
			return err
		}
		last = h.Seq
		k, _, err := tx.Last(store.Audit)
		if errors.Is(err, store.ErrNotFound) {
			return nil
		}
		if err == nil && len(k) == 8 {
			last = max(last, binary.BigEndian.Uint64(k))
		}
		return err
	}); err != nil {
		return fmt.Errorf("failed to export the audit chain: %w", err)
	}
	bw := bufio.NewWriter(w)
	enc := json.NewEncoder(bw)
	enc.SetEscapeHTML(false)
	for block := uint64(0); block <= last/exportBlock; block++ {
		if err := ctx.Err(); err != nil {
			return err
		}
		// Keys sharing the first 7 bytes are one block of 256 sequence numbers.
		var vals [][]byte
		p := store.EncodeUint64(block * exportBlock)[:7]
		if err := l.st.ForEachPrefix(store.Audit, p, func(k, v []byte) error {
			if len(k) == 8 {
				vals = append(vals, v)
			}
			return nil
		}); err != nil {
			return fmt.Errorf("failed to export the audit chain: %w", err)
		}
		for _, v := range vals {
			var e Entry
			if err := json.Unmarshal(v, &e); err != nil {
				return fmt.Errorf("failed to export the audit chain: an entry is unreadable (run `xnode audit verify`): %w", err)
			}
			if err := enc.Encode(e); err != nil {
				return fmt.Errorf("failed to write the audit export: %w", err)
			}
		}
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("failed to write the audit export: %w", err)
	}
	return nil
}

// maxLine caps one exported entry when reading an export back.
const maxLine = 16 << 20

// ReadJSONL reads entries written by Export.
func ReadJSONL(r io.Reader) ([]Entry, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), maxLine)
	var out []Entry
	line := 0
	for sc.Scan() {
		line++
		if len(sc.Bytes()) == 0 {
			continue
		}
		var e Entry
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			return nil, fmt.Errorf("audit export line %d: %w", line, err)
		}
		out = append(out, e)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("failed to read audit export after line %d: %w", line, err)
	}
	return out, nil
}
