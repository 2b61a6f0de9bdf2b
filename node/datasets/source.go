package datasets

import (
	"bufio"
	"bytes"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync/atomic"
	"unicode/utf8"

	"golang.org/x/text/encoding/simplifiedchinese"
	"golang.org/x/text/transform"
)

// Format is a file format Import reads.
type Format string

const (
	FormatCSV   Format = "csv"   // RFC 4180 with a header row
	FormatJSONL Format = "jsonl" // one JSON object per line
)

// Encodings Import reads.
const (
	EncodingUTF8 = "utf8" // the default; a leading byte-order mark is skipped
	EncodingGBK  = "gbk"  // GBK / GB2312, common in exports from Chinese systems
)

// formatFromName picks a format from a file extension.
func formatFromName(name string) (Format, bool) {
	lower := strings.ToLower(name)
	switch {
	case strings.HasSuffix(lower, ".csv"), strings.HasSuffix(lower, ".txt"):
		return FormatCSV, true
	case strings.HasSuffix(lower, ".jsonl"), strings.HasSuffix(lower, ".ndjson"), strings.HasSuffix(lower, ".jsonlines"):
		return FormatJSONL, true
	}
	return "", false
}

// maxLineBytes bounds one JSON line (and so the memory a line can take).
const maxLineBytes = 1 << 20

// rowError is a problem with one row; the import can skip it.
type rowError struct {
	line   int64
	reason string
}

func (e *rowError) Error() string { return fmt.Sprintf("line %d: %s", e.line, e.reason) }

// source reads records and fills the slots of the wanted columns.
type source interface {
	// next fills vals[i] (and present[i]) for wanted column i and returns
	// the record's line number. It returns a *rowError for a bad row that
	// can be skipped, io.EOF at the end, or another error that stops the
	// import.
	next(vals []string, present []bool) (line int64, err error)
}

// countingReader counts the bytes read from the raw file for progress.
type countingReader struct {
	r io.Reader
	n atomic.Int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n.Add(int64(n))
	return n, err
}

// decode wraps the raw input in the decoder for the encoding and skips a
// UTF-8 byte-order mark.
func decode(r io.Reader, encoding string) (io.Reader, error) {
	br := bufio.NewReaderSize(r, 64<<10)
	head, _ := br.Peek(3)
	if bytes.HasPrefix(head, []byte{0xFF, 0xFE}) || bytes.HasPrefix(head, []byte{0xFE, 0xFF}) {
		return nil, errors.New("the file is UTF-16; save it as UTF-8 (or GBK) and import again")
	}
	switch encoding {
	case "", EncodingUTF8:
		if bytes.HasPrefix(head, []byte{0xEF, 0xBB, 0xBF}) {
			br.Discard(3)
		}
		return br, nil
	case EncodingGBK:
		return transform.NewReader(br, simplifiedchinese.GBK.NewDecoder()), nil
	}
	return nil, fmt.Errorf("unknown encoding %q; use %s or %s", encoding, EncodingUTF8, EncodingGBK)
}

const utf8Hint = "is not valid UTF-8; if the file is GBK-encoded, import it with encoding gbk"

// csvSource reads CSV with a header row.
type csvSource struct {
	r     *csv.Reader
	index []int // field index of each wanted column
}

func newCSVSource(r io.Reader, wanted []string) (*csvSource, error) {
	cr := csv.NewReader(r)
	cr.ReuseRecord = true
	header, err := cr.Read()
	if err == io.EOF {
		return nil, errors.New("the file is empty; want a header row naming the columns")
	}
	if err != nil {
		return nil, fmt.Errorf("failed to read the header row: %w", err)
	}
	cols := make(map[string]int, len(header))
	names := make([]string, len(header))
	for i, h := range header {
		if !utf8.ValidString(h) {
			return nil, errors.New("the header row " + utf8Hint)
		}
		h = strings.TrimSpace(h)
		names[i] = h
		if _, dup := cols[h]; dup {
			return nil, fmt.Errorf("the header row names column %q twice", h)
		}
		cols[h] = i
	}
	s := &csvSource{r: cr, index: make([]int, len(wanted))}
	for i, w := range wanted {
		j, ok := cols[w]
		if !ok {
			return nil, fmt.Errorf("the file has no column %q; its columns are %s", w, strings.Join(names, ", "))
		}
		s.index[i] = j
	}
	cr.FieldsPerRecord = len(header)
	return s, nil
}

func (s *csvSource) next(vals []string, present []bool) (int64, error) {
	rec, err := s.r.Read()
	var pe *csv.ParseError
	switch {
	case err == io.EOF:
		return 0, io.EOF
	case errors.As(err, &pe) && errors.Is(err, csv.ErrFieldCount):
		return int64(pe.StartLine), &rowError{int64(pe.StartLine), fmt.Sprintf("has %d fields, the header has %d", len(rec), s.r.FieldsPerRecord)}
	case errors.As(err, &pe):
		return int64(pe.StartLine), &rowError{int64(pe.StartLine), fmt.Sprintf("bad CSV quoting: %v", pe.Err)}
	case err != nil:
		return 0, fmt.Errorf("failed to read the file: %w", err)
	}
	l, _ := s.r.FieldPos(0)
	line := int64(l)
	for i, j := range s.index {
		vals[i], present[i] = rec[j], true
		if !utf8.ValidString(rec[j]) {
			return line, &rowError{line, "a field " + utf8Hint}
		}
	}
	return line, nil
}

// jsonlSource reads one JSON object per line.
type jsonlSource struct {
	r    *bufio.Reader
	slot map[string]int
	line int64
}

func newJSONLSource(r io.Reader, wanted []string) *jsonlSource {
	s := &jsonlSource{r: bufio.NewReaderSize(r, 64<<10), slot: make(map[string]int, len(wanted))}
	for i, w := range wanted {
		s.slot[w] = i
	}
	return s
}

// readLine returns the next line without its line ending. A line longer
// than maxLineBytes is consumed and reported as too long.
func (s *jsonlSource) readLine() ([]byte, bool, error) {
	var long []byte
	tooLong := false
	for {
		chunk, err := s.r.ReadSlice('\n')
		if err == bufio.ErrBufferFull {
			if !tooLong && len(long)+len(chunk) <= maxLineBytes {
				long = append(long, chunk...)
			} else {
				tooLong, long = true, nil
			}
			continue
		}
		if err != nil && (err != io.EOF || (len(chunk) == 0 && len(long) == 0 && !tooLong)) {
			return nil, false, err
		}
		if long != nil {
			chunk = append(long, chunk...)
		}
		if len(chunk) > maxLineBytes {
			tooLong = true
		}
		chunk = bytes.TrimSuffix(chunk, []byte{'\n'})
		chunk = bytes.TrimSuffix(chunk, []byte{'\r'})
		return chunk, tooLong, nil
	}
}

func (s *jsonlSource) next(vals []string, present []bool) (int64, error) {
	for {
		line, tooLong, err := s.readLine()
		if err != nil {
			if err == io.EOF {
				return 0, io.EOF
			}
			return s.line, fmt.Errorf("failed to read line %d: %w", s.line+1, err)
		}
		s.line++
		if tooLong {
			return s.line, &rowError{s.line, fmt.Sprintf("is longer than %d bytes", maxLineBytes)}
		}
		if len(bytes.TrimSpace(line)) == 0 {
			continue // blank lines are allowed
		}
		if !utf8.Valid(line) {
			return s.line, &rowError{s.line, "the line " + utf8Hint}
		}
		return s.line, s.parse(line, vals, present)
	}
}

func (s *jsonlSource) parse(line []byte, vals []string, present []bool) error {
	for i := range vals {
		vals[i], present[i] = "", false
	}
	dec := json.NewDecoder(bytes.NewReader(line))
	dec.UseNumber()
	var obj map[string]any
	if err := dec.Decode(&obj); err != nil || obj == nil {
		return &rowError{s.line, "is not a JSON object"}
	}
	if _, err := dec.Token(); err != io.EOF {
		return &rowError{s.line, "has more than one JSON value"}
	}
	for k, v := range obj {
		i, ok := s.slot[k]
		if !ok {
			continue
		}
		switch v := v.(type) {
		case nil:
		case string:
			vals[i], present[i] = v, true
		case json.Number:
			vals[i], present[i] = v.String(), true
		case bool:
			vals[i], present[i] = fmt.Sprint(v), true
		default:
			return &rowError{s.line, fmt.Sprintf("field %q is an object or array; want a string, number or boolean", k)}
		}
	}
	return nil
}
