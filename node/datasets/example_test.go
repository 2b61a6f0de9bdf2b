package datasets_test

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"xnode/node/datasets"
	"xnode/node/store"
)

func ExampleNormalise() {
	for _, in := range []struct{ kind, s string }{
		{datasets.KindPhone, "+86 138-1234-5678"},
		{datasets.KindEmail, " Alice@Example.COM"},
		{datasets.KindCNID, "11010119900307123"}, // 17 characters
	} {
		out, err := datasets.Normalise(in.kind, in.s)
		fmt.Printf("%s %q: %q %v\n", in.kind, in.s, out, err)
	}
	// Output:
	// phone "+86 138-1234-5678": "13812345678" <nil>
	// email " Alice@Example.COM": "alice@example.com" <nil>
	// cn_id "11010119900307123": "" invalid identifier: resident ID has 17 characters, want 18 (or 15 for a legacy ID)
}

func ExampleKey() {
	fmt.Println(datasets.Key(datasets.KindPhone, "13812345678"))
	fmt.Println(datasets.Key(datasets.KindRaw, "张三", "1990-03-07")) // a composite key
	// Output:
	// phone:13812345678
	// raw:张三|1990-03-07
}

func ExampleService_Import() {
	dir, _ := os.MkdirTemp("", "xnode-example")
	defer os.RemoveAll(dir)
	file := filepath.Join(dir, "clients.csv")
	os.WriteFile(file, []byte("mobile,balance,segment\n"+
		"138 1234 5678,1200.50,retail\n"+
		"+86 13912345678,80,sme\n"+
		"12345,1,retail\n"+
		"0086-138-1234-5678,5,retail\n"), 0o600)

	st, err := store.Open(filepath.Join(dir, "node.db"))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer st.Close()
	svc := datasets.New(st, nil)
	ctx := context.Background()
	rep, err := svc.Import(ctx, datasets.ImportOptions{
		Name: "clients", File: file, IDColumns: []string{"mobile"}, IDKind: datasets.KindPhone,
		ValueColumns: []string{"balance", "segment:category"},
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Printf("version %d: %d read, %d imported, %d duplicate, %d invalid\n", rep.Version, rep.RowsRead, rep.Imported, rep.Duplicates, rep.Invalid)
	for _, e := range rep.Errors {
		fmt.Println(e)
	}
	fmt.Println(rep.Columns)

	view, _ := svc.Open(ctx, "clients", 0)
	ids := view.IDs(ctx)
	batch := make([][]byte, 100)
	for {
		n, err := ids.Next(batch)
		if err == io.EOF {
			break
		}
		for _, id := range batch[:n] {
			fmt.Println(string(id))
		}
	}
	// Output:
	// version 1: 4 read, 2 imported, 1 duplicate, 1 invalid
	// line 4: identifier column "mobile": mobile number has 5 digits, want 11
	// [balance:decimal(2) segment:category]
	// phone:13812345678
	// phone:13912345678
}
