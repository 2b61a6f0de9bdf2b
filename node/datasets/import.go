package datasets

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"xnode/node/store"
)

// ImportOptions says what to import and how.
type ImportOptions struct {
	Name string // dataset name; see ValidName
	// File is the path of the file to read. If Reader is set, File is only
	// used for its base name (recorded as the source) and its extension.
	File   string
	Reader io.Reader // optional: read from here instead of opening File
	Size   int64     // Reader's size in bytes for progress; 0 if unknown
	Format Format    // csv or jsonl; empty: from File's extension

	// IDColumns names the identifier column(s). With several columns the
	// key is composite: each part is normalised with IDKind and the parts
	// are joined unambiguously (see Key).
	IDColumns []string
	IDKind    string // cn_id, phone, email or raw

	// ValueColumns are typed columns, each "name" or "name:type" with type
	// integer (or int), decimal(N) (N decimal places), decimal (places
	// inferred) or category. A column without a type gets one inferred
	// from all its non-empty values: integer if all are whole numbers,
	// decimal(N) if all are numbers (N = the most decimal places seen),
	// otherwise category. Numbers are -?digits[.digits], at most 18 digits,
	// without leading zeros (so "007" is a category value). An empty cell
	// is null in any column.
	ValueColumns []string
	// LabelColumns are stored as text (risk flag, level, date, …).
	LabelColumns []string

	Encoding string // utf8 (default) or gbk
	// Strict refuses the whole file at its first bad row; otherwise bad
	// rows are skipped and reported.
	Strict bool
	// Progress, if set, is called from the importing goroutine after each
	// chunk of rows with the bytes read so far and the file size (0 if
	// unknown).
	Progress func(bytesDone, bytesTotal int64)
}

// MaxReportedErrors is how many invalid rows a Report lists; all are
// counted.
const MaxReportedErrors = 100

// Report is the outcome of an import.
type Report struct {
	Name    string `json:"name"`
	Version uint64 `json:"version"`
	Source  string `json:"source"`
	// RowsRead = Imported + Duplicates + Invalid.
	RowsRead   int64      `json:"rows_read"`
	Imported   int64      `json:"imported"`
	Duplicates int64      `json:"duplicates"` // same normalised identifier as an earlier row; the first is kept
	Invalid    int64      `json:"invalid"`
	Errors     []RowError `json:"errors,omitempty"` // the first MaxReportedErrors invalid rows
	IDKind     string     `json:"id_kind"`
	Columns    []Column   `json:"columns"`
}

// RowError is one invalid row.
type RowError struct {
	Line   int64  `json:"line"`
	Reason string `json:"reason"`
}

func (e RowError) String() string { return fmt.Sprintf("line %d: %s", e.Line, e.Reason) }

// Rows are staged in transactions of at most chunkRows rows or chunkBytes
// bytes, so an import's memory is bounded whatever the file size.
var (
	chunkRows  = 16384
	chunkBytes = 4 << 20
)

// column is the import state of one value or label column.
type column struct {
	columnSpec
	slot int // index into the source's values

	// inference over kept rows
	allNumeric bool
	maxScale   int
	maxInt     int
	nonNull    int64
}

// infers reports whether the column's type or scale comes from the data.
func (c *column) infers() bool { return c.typ == "" || (c.typ == TypeDecimal && c.scale < 0) }

// cellStat is what inference needs from one cell, applied only once the
// row is known not to be a duplicate.
type cellStat struct {
	null, numeric   bool
	scale, intDigit int
}

// Import reads a file and stores it as the next version of the named
// dataset. Either the whole file becomes one new version or nothing does:
// on any error (or cancellation) the staged rows are discarded.
func (s *Service) Import(ctx context.Context, opts ImportOptions) (*Report, error) {
	imp, err := s.newImport(opts)
	if err != nil {
		return nil, err
	}
	defer imp.close()
	rep, err := imp.run(ctx)
	if err != nil {
		if errors.Is(err, store.ErrDiskFull) {
			// Not the file's fault: the operator must make room.
			s.log.Error("import failed: no room for the store; no version was added", "dataset", opts.Name, "source", imp.display, "err", err)
		}
		return nil, fmt.Errorf("failed to import %s into dataset %q: %w", imp.display, opts.Name, err)
	}
	s.log.Info("imported dataset", "dataset", rep.Name, "version", rep.Version, "source", rep.Source,
		"rows", rep.Imported, "duplicates", rep.Duplicates, "invalid", rep.Invalid)
	return rep, nil
}

type importer struct {
	s       *Service
	opts    ImportOptions
	display string // file name for messages
	format  Format
	cols    []*column
	idSlots int
	file    *os.File
	counter *countingReader
	total   int64
	report  Report

	staged *store.StagedVersion
	chunk  []store.NewRow
	stats  []cellStat // per chunk row, per inferred column
	arena  []byte
}

func (s *Service) newImport(opts ImportOptions) (*importer, error) {
	if err := ValidName(opts.Name); err != nil {
		return nil, err
	}
	imp := &importer{s: s, opts: opts, display: filepath.Base(opts.File)}
	if opts.File == "" {
		if opts.Reader == nil {
			return nil, errors.New("nothing to import: set the file to read")
		}
		imp.display = "input"
	}
	imp.format = opts.Format
	if imp.format == "" {
		f, ok := formatFromName(opts.File)
		if !ok {
			return nil, fmt.Errorf("cannot tell the format of %s from its extension; set the format to csv or jsonl", imp.display)
		}
		imp.format = f
	}
	if imp.format != FormatCSV && imp.format != FormatJSONL {
		return nil, fmt.Errorf("unknown format %q; use csv or jsonl", imp.format)
	}
	switch opts.Encoding {
	case "":
		imp.opts.Encoding = EncodingUTF8
	case EncodingUTF8, EncodingGBK:
	default:
		return nil, fmt.Errorf("unknown encoding %q; use %s or %s", opts.Encoding, EncodingUTF8, EncodingGBK)
	}
	if !slices.Contains(Kinds, opts.IDKind) {
		return nil, fmt.Errorf("unknown identifier kind %q; use one of %s", opts.IDKind, strings.Join(Kinds, ", "))
	}
	if len(opts.IDColumns) == 0 {
		return nil, errors.New("no identifier column: name the column(s) holding the identifier")
	}
	seen := map[string]string{}
	use := func(name, role string) error {
		if name == "" {
			return fmt.Errorf("an empty %s column name", role)
		}
		if prev, dup := seen[name]; dup {
			return fmt.Errorf("column %q is named as both %s and %s column", name, prev, role)
		}
		seen[name] = role
		return nil
	}
	for _, c := range opts.IDColumns {
		if err := use(strings.TrimSpace(c), "an identifier"); err != nil {
			return nil, err
		}
	}
	imp.idSlots = len(opts.IDColumns)
	slot := imp.idSlots
	for _, v := range opts.ValueColumns {
		spec, err := parseValueColumn(v)
		if err != nil {
			return nil, err
		}
		if err := use(spec.name, "a value"); err != nil {
			return nil, err
		}
		imp.cols = append(imp.cols, &column{columnSpec: spec, slot: slot, allNumeric: true})
		slot++
	}
	for _, l := range opts.LabelColumns {
		name := strings.TrimSpace(l)
		if err := use(name, "a label"); err != nil {
			return nil, err
		}
		imp.cols = append(imp.cols, &column{columnSpec: columnSpec{name: name, typ: TypeLabel, isLabel: true, declared: true}, slot: slot})
		slot++
	}
	imp.report = Report{Name: opts.Name, Source: imp.display, IDKind: opts.IDKind}
	return imp, nil
}

func (imp *importer) wanted() []string {
	w := make([]string, 0, imp.idSlots+len(imp.cols))
	for _, c := range imp.opts.IDColumns {
		w = append(w, strings.TrimSpace(c))
	}
	for _, c := range imp.cols {
		w = append(w, c.name)
	}
	return w
}

func (imp *importer) open() (source, error) {
	r := imp.opts.Reader
	imp.total = imp.opts.Size
	if r == nil {
		f, err := os.Open(imp.opts.File)
		if err != nil {
			return nil, err
		}
		imp.file = f
		if st, err := f.Stat(); err == nil {
			imp.total = st.Size()
		}
		r = f
	}
	imp.counter = &countingReader{r: r}
	dr, err := decode(imp.counter, imp.opts.Encoding)
	if err != nil {
		return nil, err
	}
	if imp.format == FormatJSONL {
		return newJSONLSource(dr, imp.wanted()), nil
	}
	return newCSVSource(dr, imp.wanted())
}

func (imp *importer) close() {
	if imp.staged != nil {
		if err := imp.staged.Abort(); err != nil {
			imp.s.log.Error("failed to discard a staged import; the next start removes it", "dataset", imp.opts.Name, "err", err)
		}
	}
	if imp.file != nil {
		imp.file.Close()
	}
}

func (imp *importer) run(ctx context.Context) (*Report, error) {
	src, err := imp.open()
	if err != nil {
		return nil, err
	}
	if imp.staged, err = imp.s.st.BeginVersion(imp.opts.Name); err != nil {
		return nil, err
	}
	wanted := imp.wanted()
	vals := make([]string, len(wanted))
	present := make([]bool, len(wanted))
	parts := make([]string, imp.idSlots)
	for {
		line, err := src.next(vals, present)
		if err == io.EOF {
			break
		}
		var re *rowError
		if errors.As(err, &re) {
			imp.report.RowsRead++
			if err := imp.bad(re.line, re.reason); err != nil {
				return nil, err
			}
			continue
		}
		if err != nil {
			return nil, err
		}
		imp.report.RowsRead++
		if reason := imp.addRow(vals, present, parts, wanted); reason != "" {
			if err := imp.bad(line, reason); err != nil {
				return nil, err
			}
			continue
		}
		if len(imp.chunk) >= chunkRows || len(imp.arena) >= chunkBytes {
			if err := imp.flush(ctx); err != nil {
				return nil, err
			}
		}
	}
	if err := imp.flush(ctx); err != nil {
		return nil, err
	}
	if imp.report.Imported == 0 {
		msg := fmt.Sprintf("no rows to import: %d read, %d invalid", imp.report.RowsRead, imp.report.Invalid)
		if len(imp.report.Errors) > 0 {
			msg += " (first: " + imp.report.Errors[0].String() + ")"
		}
		return nil, errors.New(msg)
	}
	cols, err := imp.finalColumns()
	if err != nil {
		return nil, err
	}
	imp.report.Columns = cols
	meta, err := json.Marshal(versionMeta{
		IDKind: imp.opts.IDKind, IDColumns: wanted[:imp.idSlots], Columns: cols,
		Source: imp.display, Format: imp.format, Encoding: imp.opts.Encoding,
		RowsRead: imp.report.RowsRead, Duplicates: imp.report.Duplicates, Invalid: imp.report.Invalid,
	})
	if err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	dv, err := imp.staged.Commit(meta)
	if err != nil {
		return nil, err
	}
	imp.staged = nil
	imp.report.Version = dv.Version
	imp.progress()
	return &imp.report, nil
}

// bad records an invalid row, or fails the import in strict mode.
func (imp *importer) bad(line int64, reason string) error {
	if imp.opts.Strict {
		return fmt.Errorf("line %d: %s (strict mode refuses the file; fix the row, or import without strict mode to skip bad rows)", line, reason)
	}
	imp.report.Invalid++
	if len(imp.report.Errors) < MaxReportedErrors {
		imp.report.Errors = append(imp.report.Errors, RowError{Line: line, Reason: reason})
	}
	return nil
}

// addRow normalises and encodes one record into the chunk, or returns why
// the row is invalid.
func (imp *importer) addRow(vals []string, present []bool, parts, wanted []string) string {
	for i := 0; i < imp.idSlots; i++ {
		if !present[i] {
			return fmt.Sprintf("identifier field %q is missing", wanted[i])
		}
		p, err := Normalise(imp.opts.IDKind, vals[i])
		if err != nil {
			return fmt.Sprintf("identifier column %q: %s", wanted[i], strings.TrimPrefix(err.Error(), ErrInvalidID.Error()+": "))
		}
		parts[i] = p
	}
	start := len(imp.arena)
	imp.arena = append(imp.arena, Key(imp.opts.IDKind, parts...)...)
	keyEnd := len(imp.arena)
	statStart := len(imp.stats)
	for _, c := range imp.cols {
		v := strings.TrimSpace(vals[c.slot])
		var st cellStat
		var reason string
		imp.arena, st, reason = c.encode(imp.arena, v)
		if reason != "" {
			imp.arena, imp.stats = imp.arena[:start], imp.stats[:statStart]
			return fmt.Sprintf("column %q: %s", c.name, reason)
		}
		if c.infers() {
			imp.stats = append(imp.stats, st)
		}
	}
	imp.chunk = append(imp.chunk, store.NewRow{
		Key:   imp.arena[start:keyEnd:keyEnd],
		Value: imp.arena[keyEnd:len(imp.arena):len(imp.arena)],
	})
	return ""
}

// encode appends one cell and returns what inference needs, or why the
// value does not fit the column.
func (c *column) encode(b []byte, v string) ([]byte, cellStat, string) {
	if v == "" {
		return appendNull(b), cellStat{null: true}, ""
	}
	switch {
	case c.typ == TypeLabel || c.typ == TypeCategory:
		return appendText(b, v), cellStat{}, ""
	case c.typ == "": // inferred
		n, err := parseNumber(v)
		if err != nil {
			return appendText(b, v), cellStat{}, ""
		}
		return appendNum(b, n), cellStat{numeric: true, scale: n.scale, intDigit: n.intDigits}, ""
	}
	n, err := parseNumber(v)
	if err == errNotNumber {
		return b, cellStat{}, fmt.Sprintf("%s is not a number (want digits with an optional leading - and decimal point)", quote(v))
	}
	if err != nil {
		return b, cellStat{}, fmt.Sprintf("%s %v", quote(v), err)
	}
	switch {
	case c.typ == TypeInteger && n.scale > 0:
		return b, cellStat{}, fmt.Sprintf("%s is not a whole number; declare the column as decimal(%d)", quote(v), n.scale)
	case c.typ == TypeDecimal && c.scale >= 0 && n.scale > c.scale:
		return b, cellStat{}, fmt.Sprintf("%s has %d decimal places, the column is decimal(%d)", quote(v), n.scale, c.scale)
	case c.typ == TypeDecimal && c.scale >= 0 && n.intDigits+c.scale > maxDigits:
		return b, cellStat{}, fmt.Sprintf("%s has more than %d digits at scale %d", quote(v), maxDigits, c.scale)
	}
	return appendNum(b, n), cellStat{numeric: true, scale: n.scale, intDigit: n.intDigits}, ""
}

// flush stages the chunk in one transaction and applies the inference
// statistics of the rows that were kept.
func (imp *importer) flush(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if len(imp.chunk) == 0 {
		return nil
	}
	dups, err := imp.staged.Append(imp.chunk)
	if err != nil {
		return err
	}
	imp.report.Duplicates += int64(len(dups))
	imp.report.Imported += int64(len(imp.chunk) - len(dups))

	var inferred []*column
	for _, c := range imp.cols {
		if c.infers() {
			inferred = append(inferred, c)
		}
	}
	if len(inferred) > 0 {
		d := 0
		for row := range imp.chunk {
			if d < len(dups) && dups[d] == row {
				d++
				continue
			}
			for j, c := range inferred {
				st := imp.stats[row*len(inferred)+j]
				if st.null {
					continue
				}
				c.nonNull++
				if !st.numeric {
					c.allNumeric = false
					continue
				}
				c.maxScale = max(c.maxScale, st.scale)
				c.maxInt = max(c.maxInt, st.intDigit)
			}
		}
	}
	// The transaction has committed, so bbolt no longer refers to the arena.
	imp.chunk, imp.stats, imp.arena = imp.chunk[:0], imp.stats[:0], imp.arena[:0]
	imp.progress()
	return nil
}

func (imp *importer) progress() {
	if imp.opts.Progress != nil {
		imp.opts.Progress(imp.counter.n.Load(), imp.total)
	}
}

// finalColumns fixes each column's type and scale.
func (imp *importer) finalColumns() ([]Column, error) {
	out := make([]Column, len(imp.cols))
	for i, c := range imp.cols {
		col := Column{Name: c.name, Type: c.typ, Scale: max(c.scale, 0)}
		switch {
		case c.typ == "":
			col.Inferred = true
			switch {
			case c.nonNull == 0 || !c.allNumeric || c.maxInt+c.maxScale > maxDigits:
				col.Type, col.Scale = TypeCategory, 0
			case c.maxScale == 0:
				col.Type = TypeInteger
			default:
				col.Type, col.Scale = TypeDecimal, c.maxScale
			}
		case c.typ == TypeDecimal && c.scale < 0:
			col.Inferred = true
			if c.maxInt+c.maxScale > maxDigits {
				return nil, fmt.Errorf("column %q: its values need more than %d digits at %d decimal places; declare a smaller scale", c.name, maxDigits, c.maxScale)
			}
			col.Scale = c.maxScale
		}
		out[i] = col
	}
	return out, nil
}
