package datasets

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/text/encoding/simplifiedchinese"

	"xnode/node/store"
)

type env struct {
	svc  *Service
	st   *store.Store
	path string
	dir  string
}

func newEnv(t *testing.T) *env {
	t.Helper()
	dir := t.TempDir()
	path := filepath.Join(dir, "node.db")
	st, err := store.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := st.Check(); err != nil && !strings.Contains(err.Error(), "database not open") {
			t.Errorf("store Check() = %v, want a consistent file", err)
		}
		st.Close()
	})
	return &env{svc: New(st, nil), st: st, path: path, dir: dir}
}

func (e *env) write(t *testing.T, name string, content []byte) string {
	t.Helper()
	p := filepath.Join(e.dir, name)
	if err := os.WriteFile(p, content, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func (e *env) importOK(t *testing.T, opts ImportOptions) *Report {
	t.Helper()
	rep, err := e.svc.Import(context.Background(), opts)
	if err != nil {
		t.Fatalf("Import(%s) = %v, want success", opts.File, err)
	}
	if rep.RowsRead != rep.Imported+rep.Duplicates+rep.Invalid {
		t.Errorf("report: read %d != imported %d + duplicates %d + invalid %d", rep.RowsRead, rep.Imported, rep.Duplicates, rep.Invalid)
	}
	return rep
}

// rows reads every row of a version with the given columns as strings:
// "id|col1|col2".
func (e *env) rows(t *testing.T, name string, version uint64, cols ...string) []string {
	t.Helper()
	v, err := e.svc.Open(context.Background(), name, version)
	if err != nil {
		t.Fatalf("Open(%s, %d) = %v", name, version, err)
	}
	var out []string
	for r, err := range v.Rows(context.Background(), cols...) {
		if err != nil {
			t.Fatalf("Rows(%s) = %v", name, err)
		}
		s := r.ID
		for _, val := range r.Values {
			s += "|" + val.String()
		}
		out = append(out, s)
	}
	return out
}

func TestImportCSVQuirks(t *testing.T) {
	e := newEnv(t)
	id1 := residentID("110101", "19900307", "123")
	id2 := residentID("310104", "19821111", "456")
	id3 := residentID("440301", "20010101", "789")
	// BOM, CRLF line ends, a quoted field with a comma, one with a newline
	// and an escaped quote, spaces around the id.
	csv := "\ufeffid,name,amount,note\r\n" +
		id1 + `,"Wang, Wei",12.50,plain` + "\r\n" +
		" " + id2 + ` ,"Li ""Lily"" Na",3,"two` + "\r\n" + `lines"` + "\r\n" +
		"bad-id,Zhao,1,x\r\n" +
		id3 + ",Chen,,last\r\n"
	f := e.write(t, "clients.csv", []byte(csv))
	rep := e.importOK(t, ImportOptions{
		Name: "clients", File: f, IDColumns: []string{"id"}, IDKind: KindCNID,
		ValueColumns: []string{"amount"}, LabelColumns: []string{"name", "note"},
	})
	if rep.Version != 1 || rep.RowsRead != 4 || rep.Imported != 3 || rep.Invalid != 1 {
		t.Errorf("report = version %d read %d imported %d invalid %d, want 1, 4, 3, 1", rep.Version, rep.RowsRead, rep.Imported, rep.Invalid)
	}
	// The bad row starts on line 5: the quoted newline makes row 3 span lines 3-4.
	if len(rep.Errors) != 1 || rep.Errors[0].Line != 5 || !strings.Contains(rep.Errors[0].Reason, `identifier column "id"`) {
		t.Errorf("errors = %v, want one on line 5 about column id", rep.Errors)
	}
	got := e.rows(t, "clients", 0, "name", "amount", "note")
	want := []string{
		id1 + "|Wang, Wei|12.50|plain",
		id2 + `|Li "Lily" Na|3.00|two` + "\r\nlines",
		id3 + "|Chen||last",
	}
	// encoding/csv turns \r\n inside a quoted field into \n.
	want[1] = strings.ReplaceAll(want[1], "\r\n", "\n")
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("rows =\n%q\nwant\n%q", got, want)
	}
	info, _ := e.svc.Show(context.Background(), "clients")
	wantCols := "[amount:decimal(2) name:label note:label]"
	if fmt.Sprint(info.Columns) != wantCols {
		t.Errorf("columns = %v, want %s", info.Columns, wantCols)
	}
}

func TestImportGBK(t *testing.T) {
	e := newEnv(t)
	phone := "13812345678"
	text := "手机,姓名,风险等级\n" + phone + ",张三,高\n+86 139 0000 1111,李四,低\n"
	enc, err := simplifiedchinese.GBK.NewEncoder().Bytes([]byte(text))
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(enc, []byte(text)) {
		t.Fatal("GBK encoding did not change the text; the test would prove nothing")
	}
	f := e.write(t, "risk.csv", enc)
	rep := e.importOK(t, ImportOptions{Name: "risk", File: f, IDColumns: []string{"手机"}, IDKind: KindPhone,
		LabelColumns: []string{"姓名", "风险等级"}, Encoding: EncodingGBK})
	if rep.Imported != 2 {
		t.Errorf("imported %d rows, want 2 (errors %v)", rep.Imported, rep.Errors)
	}
	got := e.rows(t, "risk", 0, "姓名", "风险等级")
	if fmt.Sprint(got) != "[13812345678|张三|高 13900001111|李四|低]" {
		t.Errorf("rows = %v, want the GBK text decoded", got)
	}
	v, _ := e.svc.Open(context.Background(), "risk", 0)
	r, err := v.Lookup(context.Background(), []byte("phone:13900001111"))
	if err != nil || r.Values[0].Text != "李四" {
		t.Errorf("Lookup(phone:13900001111) = %+v, %v; want 李四", r, err)
	}

	// Read as UTF-8, the same file is refused with a hint about GBK.
	_, err = e.svc.Import(context.Background(), ImportOptions{Name: "risk2", File: f, IDColumns: []string{"手机"}, IDKind: KindPhone})
	if err == nil || !strings.Contains(err.Error(), "encoding gbk") {
		t.Errorf("Import of a GBK file as UTF-8 = %v, want an error suggesting encoding gbk", err)
	}
}

func TestImportJSONL(t *testing.T) {
	e := newEnv(t)
	jsonl := `{"email":"Alice@Example.com","amount":1200,"rate":0.035,"vip":true,"seg":"A"}` + "\r\n" +
		"\n" +
		`{"email":"bob@example.com","amount":-5,"rate":1,"vip":false,"seg":null}` + "\n" +
		`{"email":"carol@example.com","amount":{"x":1}}` + "\n" +
		`not json` + "\n" +
		`{"amount":3}` + "\n" +
		`{"email":"ALICE@example.com","amount":7}` + "\n" +
		`{"email":"dan@example.com","amount":8} {"x":1}` + "\n" +
		`{"email":"erin@example.com","amount":"9","seg":"B"}` // no final newline
	f := e.write(t, "people.jsonl", []byte(jsonl))
	rep := e.importOK(t, ImportOptions{Name: "people", File: f, IDColumns: []string{"email"}, IDKind: KindEmail,
		ValueColumns: []string{"amount", "rate", "seg"}, LabelColumns: []string{"vip"}})
	wantErrs := []RowError{
		{4, `field "amount" is an object or array; want a string, number or boolean`},
		{5, "is not a JSON object"},
		{6, `identifier field "email" is missing`},
		{8, "has more than one JSON value"},
	}
	if fmt.Sprint(rep.Errors) != fmt.Sprint(wantErrs) {
		t.Errorf("errors =\n%v\nwant\n%v", rep.Errors, wantErrs)
	}
	if rep.Imported != 3 || rep.Duplicates != 1 || rep.Invalid != 4 || rep.RowsRead != 8 {
		t.Errorf("report: imported %d duplicates %d invalid %d read %d; want 3, 1, 4, 8", rep.Imported, rep.Duplicates, rep.Invalid, rep.RowsRead)
	}
	got := e.rows(t, "people", 0, "amount", "rate", "seg", "vip")
	want := "[alice@example.com|1200|0.035|A|true bob@example.com|-5|1.000||false erin@example.com|9||B|]"
	if fmt.Sprint(got) != want {
		t.Errorf("rows = %v\nwant %s", got, want)
	}
	info, _ := e.svc.Show(context.Background(), "people")
	if fmt.Sprint(info.Columns) != "[amount:integer rate:decimal(3) seg:category vip:label]" {
		t.Errorf("columns = %v, want amount:integer rate:decimal(3) seg:category vip:label", info.Columns)
	}
	if info.Format != FormatJSONL || info.Source != "people.jsonl" {
		t.Errorf("info format %q source %q, want jsonl, people.jsonl", info.Format, info.Source)
	}
}

func TestBadRowsStrictAndLenient(t *testing.T) {
	id := residentID("110101", "19900307", "123")
	tests := []struct {
		name     string
		row      string // line 3 of a CSV whose line 2 is valid
		value    string // value column spec
		wantLine int64
		reason   string
	}{
		{"bad check digit", wrongCheck(residentID("110101", "19700101", "001")) + ",1", "amount", 3, "check character"},
		{"too few fields", residentID("110101", "19700101", "001"), "amount", 3, "has 1 fields, the header has 2"},
		{"bad quoting", `"` + residentID("110101", "19700101", "001") + `"x,1`, "amount", 3, "bad CSV quoting"},
		{"not an integer", residentID("110101", "19700101", "001") + ",1.5", "amount:integer", 3, "not a whole number"},
		{"too many decimals", residentID("110101", "19700101", "001") + ",1.555", "amount:decimal(2)", 3, "has 3 decimal places"},
		{"not a number", residentID("110101", "19700101", "001") + ",12k", "amount:decimal", 3, `"12k" is not a number`},
		{"invalid UTF-8", residentID("110101", "19700101", "001") + ",\xff", "amount", 3, "not valid UTF-8"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			f := e.write(t, "d.csv", []byte("id,amount\n"+id+",1\n"+tc.row+"\n"))
			opts := ImportOptions{Name: "d", File: f, IDColumns: []string{"id"}, IDKind: KindCNID, ValueColumns: []string{tc.value}}

			strict := opts
			strict.Strict = true
			_, err := e.svc.Import(context.Background(), strict)
			if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("line %d: ", tc.wantLine)) || !strings.Contains(err.Error(), tc.reason) {
				t.Fatalf("strict Import = %v, want an error naming line %d and %q", err, tc.wantLine, tc.reason)
			}
			if _, err := e.svc.Show(context.Background(), "d"); !errors.Is(err, ErrNotFound) {
				t.Errorf("Show after a refused strict import = %v, want ErrNotFound", err)
			}

			rep := e.importOK(t, opts)
			if rep.Imported != 1 || rep.Invalid != 1 || len(rep.Errors) != 1 ||
				rep.Errors[0].Line != tc.wantLine || !strings.Contains(rep.Errors[0].Reason, tc.reason) {
				t.Errorf("lenient report: imported %d invalid %d errors %v; want 1, 1, line %d %q", rep.Imported, rep.Invalid, rep.Errors, tc.wantLine, tc.reason)
			}
		})
	}
}

func TestReportKeepsFirstHundredErrors(t *testing.T) {
	e := newEnv(t)
	var b strings.Builder
	b.WriteString("id\n")
	b.WriteString(residentID("110101", "19900307", "123") + "\n")
	for i := 0; i < 150; i++ {
		b.WriteString("bad\n")
	}
	f := e.write(t, "d.csv", []byte(b.String()))
	rep := e.importOK(t, ImportOptions{Name: "d", File: f, IDColumns: []string{"id"}, IDKind: KindCNID})
	if rep.Invalid != 150 || len(rep.Errors) != MaxReportedErrors || rep.Errors[99].Line != 102 {
		t.Errorf("invalid %d, %d errors listed, last listed line %d; want 150, 100, 102", rep.Invalid, len(rep.Errors), rep.Errors[len(rep.Errors)-1].Line)
	}
}

func TestDuplicatesKeepTheFirst(t *testing.T) {
	e := newEnv(t)
	full := residentID("440301", "19750615", "271")
	legacy := full[:6] + full[8:17]
	other := idWithCheck(t, "19800101", 'X')
	csv := "id,seg\n" + full + ",first\n" + strings.ToLower(other) + ",x\n" + legacy + ",legacy\n" + other + ",again\n"
	f := e.write(t, "d.csv", []byte(csv))
	rep := e.importOK(t, ImportOptions{Name: "d", File: f, IDColumns: []string{"id"}, IDKind: KindCNID, LabelColumns: []string{"seg"}})
	if rep.Imported != 2 || rep.Duplicates != 2 {
		t.Errorf("imported %d duplicates %d, want 2 and 2 (legacy and lower-case x forms are the same IDs)", rep.Imported, rep.Duplicates)
	}
	if got := e.rows(t, "d", 0, "seg"); fmt.Sprint(got) != fmt.Sprint([]string{full + "|first", other + "|x"}) {
		t.Errorf("rows = %v, want the first of each identifier", got)
	}
}

func TestCompositeKey(t *testing.T) {
	e := newEnv(t)
	csv := "name,birth,v\n张三,1990-03-07,1\n张三,1990-03-08,2\n 张三 ,1990-03-07,3\na|b,c,4\na,b|c,5\n"
	f := e.write(t, "d.csv", []byte(csv))
	rep := e.importOK(t, ImportOptions{Name: "d", File: f, IDColumns: []string{"name", "birth"}, IDKind: KindRaw, ValueColumns: []string{"v"}})
	if rep.Imported != 4 || rep.Duplicates != 1 {
		t.Errorf("imported %d duplicates %d, want 4 and 1", rep.Imported, rep.Duplicates)
	}
	v, _ := e.svc.Open(context.Background(), "d", 0)
	var keys []string
	for r, err := range v.Rows(context.Background()) {
		if err != nil {
			t.Fatal(err)
		}
		keys = append(keys, r.Key)
	}
	want := []string{"raw:张三|1990-03-07", "raw:张三|1990-03-08", `raw:a\|b|c`, `raw:a|b\|c`}
	if fmt.Sprint(keys) != fmt.Sprint(want) {
		t.Errorf("keys = %q, want %q", keys, want)
	}
}

func TestValueColumnTypes(t *testing.T) {
	e := newEnv(t)
	csv := "id,int,dec,cat,zip,d2,big\n" +
		"a,1,1.5,x,007,12.5,1\n" +
		"b,-20,2.25,1,100,3,\n" +
		"c,,3,2.50,200,-0.01,123456789012345678\n"
	f := e.write(t, "d.csv", []byte(csv))
	e.importOK(t, ImportOptions{Name: "d", File: f, IDColumns: []string{"id"}, IDKind: KindRaw,
		ValueColumns: []string{"int", "dec", "cat", "zip", "d2:decimal(2)", "big"}})
	info, _ := e.svc.Show(context.Background(), "d")
	wantCols := "[int:integer dec:decimal(2) cat:category zip:category d2:decimal(2) big:integer]"
	if fmt.Sprint(info.Columns) != wantCols {
		t.Errorf("columns = %v, want %s", info.Columns, wantCols)
	}
	v, _ := e.svc.Open(context.Background(), "d", 0)
	r, err := v.Row(context.Background(), 0)
	if err != nil {
		t.Fatal(err)
	}
	dec, d2 := r.Values[1], r.Values[4]
	if dec.Int != 150 || dec.Scale != 2 || d2.Int != 1250 || d2.Scale != 2 {
		t.Errorf("row a: dec = %d×10^-%d, d2 = %d×10^-%d; want 150×10^-2 and 1250×10^-2", dec.Int, dec.Scale, d2.Int, d2.Scale)
	}
	got := e.rows(t, "d", 0, "int", "dec", "cat", "zip", "d2", "big")
	want := "[a|1|1.50|x|007|12.50|1 b|-20|2.25|1|100|3.00| c||3.00|2.50|200|-0.01|123456789012345678]"
	if fmt.Sprint(got) != want {
		t.Errorf("rows = %v\nwant  %s", got, want)
	}
	r, _ = v.Row(context.Background(), 2)
	if !r.Values[0].Null || r.Values[0].String() != "" {
		t.Errorf("empty int cell = %+v, want null", r.Values[0])
	}
}

func TestOptionErrors(t *testing.T) {
	e := newEnv(t)
	f := e.write(t, "d.csv", []byte("id,v\nx,1\n"))
	tests := []struct {
		name string
		opts ImportOptions
		want string
	}{
		{"bad name", ImportOptions{Name: "a b", File: f, IDColumns: []string{"id"}, IDKind: KindRaw}, "not valid"},
		{"no id column", ImportOptions{Name: "d", File: f, IDKind: KindRaw}, "no identifier column"},
		{"unknown kind", ImportOptions{Name: "d", File: f, IDColumns: []string{"id"}, IDKind: "ssn"}, "use one of cn_id"},
		{"missing column", ImportOptions{Name: "d", File: f, IDColumns: []string{"mobile"}, IDKind: KindRaw}, `no column "mobile"; its columns are id, v`},
		{"column twice", ImportOptions{Name: "d", File: f, IDColumns: []string{"id"}, IDKind: KindRaw, LabelColumns: []string{"id"}}, "named as both"},
		{"bad scale", ImportOptions{Name: "d", File: f, IDColumns: []string{"id"}, IDKind: KindRaw, ValueColumns: []string{"v:decimal(x)"}}, "decimal scale"},
		{"unknown extension", ImportOptions{Name: "d", File: "d.xlsx", IDColumns: []string{"id"}, IDKind: KindRaw}, "set the format"},
		{"unknown encoding", ImportOptions{Name: "d", File: f, IDColumns: []string{"id"}, IDKind: KindRaw, Encoding: "big5"}, "unknown encoding"},
		{"missing file", ImportOptions{Name: "d", File: filepath.Join(e.dir, "nope.csv"), IDColumns: []string{"id"}, IDKind: KindRaw}, "no such file"},
		{"only bad rows", ImportOptions{Name: "d", File: f, IDColumns: []string{"id"}, IDKind: KindCNID}, "no rows to import: 1 read, 1 invalid (first: line 2"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := e.svc.Import(context.Background(), tc.opts)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Import = %v, want an error containing %q", err, tc.want)
			}
		})
	}
	if l, _ := e.svc.List(context.Background()); len(l) != 0 {
		t.Errorf("List after failed imports = %v, want none", l)
	}
}

func TestVersionsAndDrop(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	opts := func(f string) ImportOptions {
		return ImportOptions{Name: "loans", File: f, IDColumns: []string{"phone"}, IDKind: KindPhone, ValueColumns: []string{"amount"}}
	}
	e.importOK(t, opts(e.write(t, "v1.csv", []byte("phone,amount\n13800000001,10\n13800000002,20\n"))))
	rep := e.importOK(t, opts(e.write(t, "v2.csv", []byte("phone,amount\n13800000003,30\n"))))
	if rep.Version != 2 {
		t.Errorf("second import made version %d, want 2", rep.Version)
	}
	e.importOK(t, ImportOptions{Name: "other", File: e.write(t, "o.jsonl", []byte(`{"id":"x"}`)), IDColumns: []string{"id"}, IDKind: KindRaw})

	info, err := e.svc.Show(ctx, "loans")
	if err != nil || info.Version != 2 || info.Rows != 1 || info.Source != "v2.csv" || info.IDKind != KindPhone || info.Created.IsZero() {
		t.Errorf("Show = %+v, %v; want version 2, 1 row, source v2.csv, kind phone, a created time", info, err)
	}
	if got := e.rows(t, "loans", 1, "amount"); fmt.Sprint(got) != "[13800000001|10 13800000002|20]" {
		t.Errorf("version 1 rows = %v, want its own two rows", got)
	}
	vs, err := e.svc.Versions(ctx, "loans")
	if err != nil || len(vs) != 2 || vs[0].Version != 1 || vs[1].Version != 2 {
		t.Errorf("Versions = %d, %v; want versions 1 and 2", len(vs), err)
	}
	list, _ := e.svc.List(ctx)
	if len(list) != 2 || list[0].Name != "loans" || list[0].Version != 2 || list[1].Name != "other" {
		t.Errorf("List = %+v, want loans v2 and other", list)
	}
	if _, err := e.svc.Open(ctx, "loans", 7); !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), "no version 7") {
		t.Errorf("Open(loans, 7) = %v, want ErrNotFound naming version 7", err)
	}

	old, _ := e.svc.Open(ctx, "loans", 1)
	n, err := e.svc.Drop(ctx, "loans")
	if err != nil || n != 2 {
		t.Fatalf("Drop = %d, %v; want 2", n, err)
	}
	if _, err := e.svc.Show(ctx, "loans"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Show after Drop = %v, want ErrNotFound", err)
	}
	if _, err := old.IDs(ctx).Next(make([][]byte, 4)); !errors.Is(err, ErrNotFound) {
		t.Errorf("reading a dropped version = %v, want ErrNotFound", err)
	}
	if _, err := e.svc.Drop(ctx, "loans"); !errors.Is(err, ErrNotFound) {
		t.Errorf("second Drop = %v, want ErrNotFound", err)
	}
	rep = e.importOK(t, opts(e.write(t, "v3.csv", []byte("phone,amount\n13800000004,40\n"))))
	if rep.Version != 3 {
		t.Errorf("import after Drop made version %d, want 3 (numbers are not reused)", rep.Version)
	}
}

func TestViewReadsInBatches(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	var b strings.Builder
	b.WriteString("phone,amount,level\n")
	var want []string
	for i := 0; i < 10; i++ {
		p := fmt.Sprintf("1390000%04d", 9-i) // descending, so position order is not key order
		fmt.Fprintf(&b, "%s,%d,L%d\n", p, i, i%3)
		want = append(want, "phone:"+p)
	}
	e.importOK(t, ImportOptions{Name: "d", File: e.write(t, "d.csv", []byte(b.String())), IDColumns: []string{"phone"}, IDKind: KindPhone,
		ValueColumns: []string{"amount"}, LabelColumns: []string{"level"}})
	v, err := e.svc.Open(ctx, "d", 0)
	if err != nil {
		t.Fatal(err)
	}
	if v.Len() != 10 || v.Version() != 1 {
		t.Errorf("Len() = %d, Version() = %d; want 10, 1", v.Len(), v.Version())
	}
	r := v.IDs(ctx)
	dst := make([][]byte, 3)
	var got []string
	var sizes []int
	for {
		n, err := r.Next(dst)
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		sizes = append(sizes, n)
		for _, id := range dst[:n] {
			got = append(got, string(id))
		}
	}
	if fmt.Sprint(got) != fmt.Sprint(want) || fmt.Sprint(sizes) != "[3 3 3 1]" {
		t.Errorf("IDs = %v in batches %v; want %v in batches [3 3 3 1]", got, sizes, want)
	}
	if n, err := r.Next(dst); n != 0 || err != io.EOF {
		t.Errorf("Next after the end = %d, %v; want 0, io.EOF", n, err)
	}

	row, err := v.Lookup(ctx, []byte("phone:13900000007"))
	if err != nil || row.Pos != 2 || row.ID != "13900000007" || row.Values[0].Int != 2 || row.Values[1].Text != "L2" {
		t.Errorf("Lookup = %+v, %v; want position 2, amount 2, level L2", row, err)
	}
	if _, err := v.Lookup(ctx, []byte("phone:13900000077")); !errors.Is(err, ErrNotFound) {
		t.Errorf("Lookup(missing) = %v, want ErrNotFound", err)
	}
	row, err = v.Row(ctx, 9)
	if err != nil || row.Key != "phone:13900000000" {
		t.Errorf("Row(9) = %+v, %v; want phone:13900000000", row, err)
	}
	if _, err := v.Row(ctx, 10); !errors.Is(err, ErrNotFound) {
		t.Errorf("Row(10) = %v, want ErrNotFound", err)
	}
	// Columns come back in the order asked for.
	if got := e.rows(t, "d", 1, "level", "amount")[4]; got != "13900000005|L1|4" {
		t.Errorf("Rows(level, amount)[4] = %q, want 13900000005|L1|4", got)
	}
	for _, err := range v.Rows(ctx, "nope") {
		if err == nil || !strings.Contains(err.Error(), `no column "nope"`) {
			t.Errorf("Rows(nope) = %v, want an unknown-column error", err)
		}
	}
}

func TestProgressAndChunks(t *testing.T) {
	e := newEnv(t)
	defer setChunkRows(4)()
	var b strings.Builder
	b.WriteString("id\n")
	for i := 0; i < 10; i++ {
		fmt.Fprintf(&b, "id%d\n", i)
	}
	content := b.String()
	var calls [][2]int64
	rep := e.importOK(t, ImportOptions{Name: "d", File: e.write(t, "d.csv", []byte(content)), IDColumns: []string{"id"}, IDKind: KindRaw,
		Progress: func(done, total int64) { calls = append(calls, [2]int64{done, total}) }})
	if rep.Imported != 10 {
		t.Errorf("imported %d, want 10", rep.Imported)
	}
	if len(calls) < 3 {
		t.Fatalf("Progress called %d times, want at least once per chunk of 4 rows", len(calls))
	}
	last := calls[len(calls)-1]
	if last != [2]int64{int64(len(content)), int64(len(content))} {
		t.Errorf("last Progress = %v, want [%d %d]", last, len(content), len(content))
	}
}

func setChunkRows(n int) func() {
	old := chunkRows
	chunkRows = n
	return func() { chunkRows = old }
}

// TestCrashMidImport simulates a process that dies after some chunks have
// been staged: the store is closed before the final commit.
func TestCrashMidImport(t *testing.T) {
	e := newEnv(t)
	defer setChunkRows(5)()
	var b strings.Builder
	b.WriteString("id\n")
	for i := 0; i < 40; i++ {
		fmt.Fprintf(&b, "id%d\n", i)
	}
	chunks := 0
	_, err := e.svc.Import(context.Background(), ImportOptions{Name: "d", File: e.write(t, "d.csv", []byte(b.String())), IDColumns: []string{"id"}, IDKind: KindRaw,
		Progress: func(int64, int64) {
			chunks++
			if chunks == 2 {
				e.st.Close() // the process "dies" with two chunks staged
			}
		}})
	if err == nil {
		t.Fatal("Import with the store closed midway succeeded")
	}
	if chunks != 2 {
		t.Fatalf("%d chunks were staged before the crash, want 2", chunks)
	}
	if left := stagedRowsets(t, e.path); left != 1 {
		t.Fatalf("%d staged row sets on disk after the crash, want 1 (the test must crash after staging)", left)
	}

	st, err := store.Open(e.path)
	if err != nil {
		t.Fatal(err)
	}
	svc := New(st, nil)
	if l, err := svc.List(context.Background()); err != nil || len(l) != 0 {
		t.Errorf("List after restart = %v, %v; want no datasets", l, err)
	}
	if _, err := svc.Open(context.Background(), "d", 0); !errors.Is(err, ErrNotFound) {
		t.Errorf("Open after restart = %v, want ErrNotFound", err)
	}
	if err := st.Check(); err != nil {
		t.Errorf("Check after restart = %v", err)
	}
	st.Close()
	if left := stagedRowsets(t, e.path); left != 0 {
		t.Errorf("%d staged row sets on disk after restart, want 0", left)
	}
}

func TestCancelledImportLeavesNothing(t *testing.T) {
	e := newEnv(t)
	defer setChunkRows(2)()
	ctx, cancel := context.WithCancel(context.Background())
	var b strings.Builder
	b.WriteString("id\n")
	for i := 0; i < 20; i++ {
		fmt.Fprintf(&b, "id%d\n", i)
	}
	_, err := e.svc.Import(ctx, ImportOptions{Name: "d", File: e.write(t, "d.csv", []byte(b.String())), IDColumns: []string{"id"}, IDKind: KindRaw,
		Progress: func(int64, int64) { cancel() }})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled Import = %v, want context.Canceled", err)
	}
	e.st.Close()
	if left := stagedRowsets(t, e.path); left != 0 {
		t.Errorf("%d staged row sets left after a cancelled import, want 0 (aborted)", left)
	}
}

func TestJSONLLongLineAndUTF16(t *testing.T) {
	e := newEnv(t)
	long := `{"id":"` + strings.Repeat("x", maxLineBytes) + `"}`
	f := e.write(t, "d.jsonl", []byte(long+"\n"+`{"id":"ok"}`+"\n"))
	rep := e.importOK(t, ImportOptions{Name: "d", File: f, IDColumns: []string{"id"}, IDKind: KindRaw})
	if rep.Imported != 1 || len(rep.Errors) != 1 || rep.Errors[0].Line != 1 || !strings.Contains(rep.Errors[0].Reason, "longer than") {
		t.Errorf("imported %d, errors %v; want 1 row and line 1 too long", rep.Imported, rep.Errors)
	}
	if got := e.rows(t, "d", 0); fmt.Sprint(got) != "[ok]" {
		t.Errorf("rows = %v, want [ok]", got)
	}

	f = e.write(t, "u16.csv", []byte{0xFF, 0xFE, 'i', 0, 'd', 0})
	_, err := e.svc.Import(context.Background(), ImportOptions{Name: "u", File: f, IDColumns: []string{"id"}, IDKind: KindRaw})
	if err == nil || !strings.Contains(err.Error(), "UTF-16") {
		t.Errorf("Import of a UTF-16 file = %v, want an error naming UTF-16", err)
	}
}
