// Package plugins is the contract between an xnode node and its query
// plugins, and the host and server sides of carrying it over gRPC.
//
// A query plugin decides what a joint query computes; the node runs the
// privacy protocol and enforces policy. A plugin never touches the network:
// it sees only the rows of its own side's dataset, restricted to the columns
// its Plan names and policy allows, and the protocol's output.
//
// One query, as the node drives it:
//
//	querier node                                   each responder node
//	Describe, Plan(params) ─ proposal, policy ─▶  Describe, Plan(params)
//	Prepare(querier, rows) → items                Prepare(responder, rows) → items
//	          ◀──────────── protocol (psi, secagg) ────────────▶
//	Finalize(outputs, matches) → result rows, summary
//
// Rows, items, matches and result rows stream in chunks (at most MaxChunk per
// call or gRPC message), so a dataset of ten million rows is never one
// message and a plugin can work in bounded memory.
//
// Hosts get a Plugin from Launch (a separate process, go-plugin over gRPC
// with automatic mutual TLS and a SHA-256 pin of the binary) or use an
// in-process implementation directly. Plugin authors implement Plugin and
// call Serve from main. Package plugintest checks any Plugin against the
// contract.
package plugins

import (
	"context"
	"errors"
)

// MaxChunk is the most rows, items, matches or result rows one message
// carries. Hosts and the gRPC adapters split larger chunks.
const MaxChunk = 4096

// Plugin is a query plugin. Every method may be called concurrently and
// must stop soon after ctx is cancelled, returning an error that wraps
// ctx.Err() in process (or a gRPC Canceled status across processes, which
// the host maps back to ctx.Err()).
type Plugin interface {
	// Describe returns what the plugin is, needs and produces.
	Describe(ctx context.Context) (Descriptor, error)
	// Plan validates params against the schema (an error wrapping
	// ErrInvalidParams lists the accepted parameters) and resolves which
	// dataset columns each side reads and which columns the result has.
	Plan(ctx context.Context, params map[string]string) (Plan, error)
	// Prepare turns this side's dataset rows into the protocol's input
	// items. rows yields chunks in ascending position with the columns of
	// req.Columns; emit takes item chunks, also in ascending position, with
	// at most one item per row. Prepare should emit as it reads.
	Prepare(ctx context.Context, req PrepareRequest, rows RowReader, emit func([]Item) error) error
	// Finalize turns the protocol's output at the querier into result rows,
	// emitted in chunks (each row has one cell per Plan.ResultColumns), and
	// a summary. matches yields the querier's matched rows (psi.intersection,
	// psi.labeled), grouped by peer in req.Peers order; it is empty for
	// other protocols.
	Finalize(ctx context.Context, req FinalizeRequest, matches MatchReader, emit func([]ResultRow) error) (Summary, error)
}

// Protocol names the privacy protocol a plugin needs from the node.
type Protocol string

// Protocols the node runs.
const (
	// Cardinality: the querier learns how many identifiers it shares with
	// each peer (ECDH-PSI cardinality).
	Cardinality Protocol = "psi.cardinality"
	// Intersection: the querier learns which of its identifiers each peer
	// holds (ECDH-PSI intersection).
	Intersection Protocol = "psi.intersection"
	// Labeled: as Intersection, and the querier learns the label each peer
	// attached to a shared identifier.
	Labeled Protocol = "psi.labeled"
	// Sum: the querier learns the element-wise sum of every party's item
	// vectors and nothing about any one party's (secure aggregation).
	Sum Protocol = "secagg.sum"
)

// Protocols lists the known protocols.
var Protocols = []Protocol{Cardinality, Intersection, Labeled, Sum}

// Descriptor says what a plugin is, needs and produces.
type Descriptor struct {
	// Name is lower-case letters, digits and dashes, starting with a letter.
	Name string
	// Version is the plugin's own version, e.g. "1.0.0".
	Version     string
	Description string
	Protocol    Protocol
	Params      []Param
	// Reads lists the dataset columns the plugin may read besides the
	// identifier (which it always reads), each named by a parameter.
	Reads []ColumnUse
	// ResultColumns are the result columns every query has; Plan may add
	// columns named by parameters.
	ResultColumns []string
}

// ParamType is the type of a parameter value, which travels as a string.
type ParamType string

// Parameter types.
const (
	ParamString  ParamType = "string"
	ParamInt     ParamType = "int"     // decimal integer, e.g. "42", "-1"
	ParamDecimal ParamType = "decimal" // decimal number, e.g. "0.05", "12"
	ParamBool    ParamType = "bool"    // "true" or "false"
	ParamEnum    ParamType = "enum"    // one of Param.Enum
)

// Param describes one parameter.
type Param struct {
	Name        string
	Type        ParamType
	Required    bool
	Default     string // used when the parameter is absent; "" for none
	Description string
	Enum        []string // the allowed values of an Enum parameter
}

// Role is a node's side in a query.
type Role string

// Roles.
const (
	Querier   Role = "querier"
	Responder Role = "responder"
	Both      Role = "both" // in ColumnUse: either side
)

// ColumnUse declares dataset columns a plugin may read.
type ColumnUse struct {
	// Param is the parameter whose value names the columns.
	Param string
	// Role is the kind of column: value, label, category or any.
	Role string
	// Side is whose dataset: Querier, Responder or Both.
	Side        Role
	Description string
}

// Plan is what a query with given parameters reads and returns. The node
// opens each side's dataset view with only the columns named here, after
// policy allowed them.
type Plan struct {
	// QuerierColumns are the querier's columns Prepare and Finalize read.
	QuerierColumns []string
	// ResponderColumns are the columns each responder's Prepare reads.
	ResponderColumns []string
	// ResultColumns name the cells of every result row.
	ResultColumns []string
	// VectorLen is the length of every item's Values (secagg.sum only).
	VectorLen int
}

// ColumnType is a dataset column's type, as in package node/datasets.
type ColumnType string

// Column types.
const (
	ColumnInteger  ColumnType = "integer"
	ColumnDecimal  ColumnType = "decimal" // Value.Int is the value × 10^Scale
	ColumnCategory ColumnType = "category"
	ColumnLabel    ColumnType = "label"
)

// Column describes one dataset column in Row.Values.
type Column struct {
	Name  string
	Type  ColumnType
	Scale int // decimal places of a decimal column
}

// Value is one cell: Int for integer and decimal columns, Text for category
// and label columns.
type Value struct {
	Null bool
	Int  int64
	Text string
}

// Row is one dataset row as a plugin sees it.
type Row struct {
	Pos    int64   // position in the dataset version
	Key    string  // namespaced identifier, e.g. "cn_id:110101199003071234"
	Values []Value // the request's Columns, in that order
}

// RowReader yields rows a chunk at a time.
type RowReader interface {
	// Next returns the next chunk of at most MaxChunk rows, valid until the
	// next call; after the last chunk it returns nil, io.EOF.
	Next() ([]Row, error)
}

// PrepareRequest is one side's Prepare call.
type PrepareRequest struct {
	Params map[string]string
	Role   Role
	// Columns are the columns in every Row.Values, in that order: those
	// the Plan named for this role.
	Columns []Column
}

// Item is one protocol input item, taken from the row at Pos.
type Item struct {
	Pos int64
	// Key is the identifier the protocol compares; "" means the row's Key.
	Key string
	// Label is what a responder attaches to the identifier (psi.labeled).
	Label string
	// Values is this row's contribution vector (secagg.sum), of
	// Plan.VectorLen entries.
	Values []int64
}

// PeerOutput is what the protocol revealed about one peer.
type PeerOutput struct {
	Peer        string // the peer's display name
	Size        int64  // the peer's input size
	Cardinality int64  // shared identifiers (psi.*)
}

// FinalizeRequest is the querier's Finalize call.
type FinalizeRequest struct {
	Params map[string]string
	// Columns are the columns in every matched Row.Values: the Plan's
	// QuerierColumns.
	Columns []Column
	// OwnSize is the number of items the querier's Prepare emitted.
	OwnSize int64
	Peers   []PeerOutput
	// Aggregate is the element-wise sum over all parties (secagg.sum).
	Aggregate []int64
	// Contributors is how many parties' vectors Aggregate sums.
	Contributors int
}

// Match is one of the querier's rows that a peer also holds.
type Match struct {
	Peer  string
	Row   Row
	Label string // the peer's label (psi.labeled)
}

// MatchReader yields matches a chunk at a time.
type MatchReader interface {
	// Next returns the next chunk of at most MaxChunk matches, valid until
	// the next call; after the last chunk it returns nil, io.EOF.
	Next() ([]Match, error)
}

// ResultRow is one row of a query's result table.
type ResultRow []string

// Summary is what a query revealed, in a few named numbers or words,
// e.g. "intersection_size": "1234".
type Summary map[string]string

// ErrInvalidParams marks parameters that do not fit a plugin's schema.
var ErrInvalidParams = errors.New("invalid plugin parameters")

// ErrDigestMismatch marks a plugin binary whose SHA-256 digest is not the
// one the host pinned.
var ErrDigestMismatch = errors.New("plugin binary digest mismatch")
