package datasets

import (
	"bytes"
	"context"
	"path/filepath"
	"strings"
	"testing"

	"xnode/node/store"
)

// fuzzImport imports data and checks what must hold for any input: no
// panic, a consistent report, and all-or-nothing versions.
func fuzzImport(f *testing.F, format Format, seeds []string) {
	for _, s := range seeds {
		f.Add([]byte(s), false)
		f.Add([]byte(s), true)
	}
	st, err := store.Open(filepath.Join(f.TempDir(), "node.db"))
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { st.Close() })
	svc := New(st, nil)
	ctx := context.Background()
	f.Fuzz(func(t *testing.T, data []byte, strict bool) {
		before, _ := svc.Show(ctx, "fuzz")
		rep, err := svc.Import(ctx, ImportOptions{
			Name: "fuzz", File: "input." + string(format), Reader: bytes.NewReader(data), Size: int64(len(data)),
			IDColumns: []string{"id"}, IDKind: KindRaw, ValueColumns: []string{"v"}, LabelColumns: []string{"l"}, Strict: strict,
		})
		after, _ := svc.Show(ctx, "fuzz")
		if err != nil {
			if after.Version != before.Version {
				t.Fatalf("failed import (%v) changed the latest version from %d to %d", err, before.Version, after.Version)
			}
			return
		}
		if rep.RowsRead != rep.Imported+rep.Duplicates+rep.Invalid || rep.Imported == 0 {
			t.Fatalf("report read %d imported %d duplicates %d invalid %d", rep.RowsRead, rep.Imported, rep.Duplicates, rep.Invalid)
		}
		if strict && rep.Invalid != 0 {
			t.Fatalf("strict import accepted %d invalid rows", rep.Invalid)
		}
		if after.Version != rep.Version || after.Rows != rep.Imported {
			t.Fatalf("Show = version %d rows %d, want version %d rows %d", after.Version, after.Rows, rep.Version, rep.Imported)
		}
		v, err := svc.Open(ctx, "fuzz", rep.Version)
		if err != nil {
			t.Fatal(err)
		}
		n := int64(0)
		for r, err := range v.Rows(ctx, "v", "l") {
			if err != nil {
				t.Fatalf("reading row %d: %v", n, err)
			}
			if !strings.HasPrefix(r.Key, "raw:") || r.ID == "" || len(r.Values) != 2 {
				t.Fatalf("row %d = %+v, want a raw: key, an id and 2 values", n, r)
			}
			n++
		}
		if n != rep.Imported {
			t.Fatalf("read %d rows back, want %d", n, rep.Imported)
		}
	})
}

func FuzzImportCSV(f *testing.F) {
	fuzzImport(f, FormatCSV, []string{
		"id,v,l\na,1,x\nb,2.5,y\n",
		"\ufeffid,v,l\r\n\"a,1\",\"1\",\"multi\nline\"\r\n",
		"id,v,l\na,1\n\"b,2,3\nc,x,\"\"\n",
		"id,v,l\na,1,x\na,2,y\n ,3,z\n",
		"v,l\n1,2\n",
		"",
	})
}

func FuzzImportJSONL(f *testing.F) {
	fuzzImport(f, FormatJSONL, []string{
		`{"id":"a","v":1,"l":"x"}` + "\n" + `{"id":"b","v":2.25,"l":true}`,
		`{"id":"a","v":{"x":1}}` + "\n\n" + `[1,2]` + "\n" + `{"id":null}`,
		"\ufeff{\"id\":\"a\"}\r\n{\"id\":\"a\"}\r\n",
		`{"id":"a"} {"id":"b"}`,
		"\xff\xfe",
	})
}
