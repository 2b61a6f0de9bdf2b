package audit_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"xnode/node/audit"
	"xnode/node/identity"
	"xnode/node/store"
)

func Example() {
	dir, _ := os.MkdirTemp("", "audit-example")
	defer os.RemoveAll(dir)
	st, _ := store.Open(filepath.Join(dir, "store.db"))
	defer st.Close()
	id, _ := identity.Generate(nil)
	log := audit.New(st, id, nil)
	ctx := context.Background()

	// A result entry commits to what was revealed; the salt stays with the
	// stored result, the digest goes into the chain.
	c, _ := audit.CommitResult(nil, []string{"id"}, [][]string{{"cn_id:110101199003074477"}})
	details, _ := audit.Details(map[string]any{
		"plugin": "match", "dataset": "customers", "version": 3,
		"revealed_to": "bank-b", "result": c,
	})
	e, _ := log.Append(ctx, audit.Entry{Kind: audit.KindResult, QueryID: "q-1", Actor: audit.ActorLocal, Details: details})
	fmt.Println(e.Seq, e.Kind)

	rep, _ := log.Verify(ctx)
	fmt.Println(rep.OK, rep.Entries)
	// Output:
	// 1 result
	// true 1
}
