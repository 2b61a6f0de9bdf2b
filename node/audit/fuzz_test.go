package audit_test

import (
	"bytes"
	"encoding/json"
	"testing"

	"xnode/node/audit"
)

// FuzzDetails checks that canonical details are a fixed point: encoding
// them again changes nothing, so an entry's hash survives export and import.
func FuzzDetails(f *testing.F) {
	for _, s := range []string{`{}`, `{"b":1,"a":[1,2,{"z":null,"y":true}]}`, `{"x":"<&>\u2028"}`, `{"n":1.500e3}`, `[]`, `"s"`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		if !json.Valid(in) {
			return
		}
		d1, err := audit.Details(json.RawMessage(in))
		if err != nil {
			return
		}
		d2, err := audit.Details(d1)
		if err != nil {
			t.Fatalf("Details(%s) = %v on canonical input", d1, err)
		}
		if !bytes.Equal(d1, d2) {
			t.Fatalf("Details not idempotent: %s then %s", d1, d2)
		}
	})
}

// FuzzReadJSONL checks that any export input either fails cleanly or
// yields entries that verify or are reported bad, without panicking.
func FuzzReadJSONL(f *testing.F) {
	f.Add([]byte(`{"seq":1,"time":"2026-01-01T00:00:00Z","kind":"run","actor":"local","signer":"x","prev":"","hash":"","sig":""}` + "\n"))
	f.Add([]byte("\n\n{}\n"))
	f.Fuzz(func(t *testing.T, in []byte) {
		es, err := audit.ReadJSONL(bytes.NewReader(in))
		if err != nil {
			return
		}
		rep := audit.VerifyEntries(es, make([]byte, 32))
		if len(es) > 0 && rep.OK {
			t.Fatalf("entries %+v verified against the zero key", es)
		}
	})
}
