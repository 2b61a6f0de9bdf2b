// Package api is the node's local HTTP API: JSON over HTTP, bound to loopback
// by default, authenticated with the bearer token in the data dir. The CLI is
// a thin client of it (see Client). The OpenAPI description is openapi.yaml
// beside this file, also served at /v1/openapi.yaml.
//
// The server talks to the node through the Backend interface, so it is
// tested with a fake and the node stays a composition root.
package api

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"time"

	"xnode/node/datasets"
)

// Errors a Backend returns (wrapped) to choose the HTTP status.
var (
	ErrNotFound    = errors.New("not found")               // 404
	ErrInvalid     = errors.New("invalid request")         // 400
	ErrConflict    = errors.New("conflict")                // 409
	ErrUnavailable = errors.New("temporarily unavailable") // 503
)

// Backend is what the API serves; the node implements it.
type Backend interface {
	NodeInfo(ctx context.Context) (NodeInfo, error)
	Peers(ctx context.Context) ([]PeerInfo, error)
	AddPeer(ctx context.Context, req AddPeerRequest) (PeerInfo, error)
	// ImportDataset imports a file the node can read; progress is called
	// with bytes done and total while it runs.
	ImportDataset(ctx context.Context, req ImportRequest, progress func(done, total int64)) (*datasets.Report, error)
	ListDatasets(ctx context.Context) ([]datasets.Info, error)
	ShowDataset(ctx context.Context, name string) (DatasetDetail, error)
	DropDataset(ctx context.Context, name string) (DropResult, error)
	// SubmitQuery validates and starts a query and returns at once with its
	// record (status pending or running).
	SubmitQuery(ctx context.Context, req QueryRequest) (Query, error)
	ListQueries(ctx context.Context) ([]Query, error)
	// GetQuery returns a query with its result once done.
	GetQuery(ctx context.Context, id string) (Query, error)
	// PendingQueries lists queries peers proposed to this node that wait for
	// a person's approval.
	PendingQueries(ctx context.Context) ([]Query, error)
	// ApproveQuery approves a pending query; DenyQuery denies it with a
	// reason the querier sees.
	ApproveQuery(ctx context.Context, id string) (Query, error)
	DenyQuery(ctx context.Context, id string, req DenyRequest) (Query, error)

	// ListPlugins lists the installed query plugins.
	ListPlugins(ctx context.Context) ([]PluginInfo, error)
	// InstallPlugin pins and records a plugin executable (or a built-in).
	InstallPlugin(ctx context.Context, req InstallPluginRequest) (PluginInfo, error)

	// Audit lists audit entries; VerifyAudit checks the whole chain;
	// ExportAudit writes it as JSON Lines.
	Audit(ctx context.Context, f AuditFilter) ([]AuditEntry, error)
	VerifyAudit(ctx context.Context) (AuditReport, error)
	ExportAudit(ctx context.Context, w io.Writer) error
}

// NodeInfo describes this node.
type NodeInfo struct {
	Name       string   `json:"name"`
	PeerID     string   `json:"peer_id"`
	Addrs      []string `json:"addrs"`
	API        string   `json:"api"`
	Consortium string   `json:"consortium,omitempty"` // consortium name, empty if not admitted
	Org        string   `json:"org,omitempty"`
	Roles      []string `json:"roles,omitempty"`
	Version    string   `json:"version"`
}

// PeerInfo describes a configured or connected consortium member.
type PeerInfo struct {
	Name      string    `json:"name"`
	PeerID    string    `json:"peer_id"`
	Addr      string    `json:"addr,omitempty"`
	Connected bool      `json:"connected"`
	Verified  bool      `json:"verified"` // membership certificate checked
	Org       string    `json:"org,omitempty"`
	Roles     []string  `json:"roles,omitempty"`
	Expires   time.Time `json:"expires,omitzero"`
	Error     string    `json:"error,omitempty"` // last connection problem
}

// AddPeerRequest adds a peer to the config and dials it.
type AddPeerRequest struct {
	Name string `json:"name"`
	Addr string `json:"addr"` // multiaddr ending in /p2p/<peer ID>
}

// ImportRequest mirrors datasets.ImportOptions for the wire.
type ImportRequest struct {
	Name         string   `json:"name"`
	File         string   `json:"file"` // absolute path readable by the node
	Format       string   `json:"format,omitempty"`
	IDColumns    []string `json:"id_columns"`
	IDKind       string   `json:"id_kind,omitempty"`
	ValueColumns []string `json:"value_columns,omitempty"`
	LabelColumns []string `json:"label_columns,omitempty"`
	Encoding     string   `json:"encoding,omitempty"`
	Strict       bool     `json:"strict,omitempty"`
}

// ImportEvent is one line of the NDJSON stream POST /v1/datasets returns:
// progress lines, then exactly one line with Report or Error.
type ImportEvent struct {
	BytesDone  int64            `json:"bytes_done,omitempty"`
	BytesTotal int64            `json:"bytes_total,omitempty"`
	Report     *datasets.Report `json:"report,omitempty"`
	Error      *Error           `json:"error,omitempty"`
}

// DatasetDetail is a dataset's latest version and its history.
type DatasetDetail struct {
	datasets.Info
	Versions []datasets.Info `json:"versions"`
}

// DropResult says what a drop removed.
type DropResult struct {
	Name     string `json:"name"`
	Versions int    `json:"versions"`
}

// Built-in query plugins. A query's Kind is its plugin's name.
const (
	KindOverlap = "overlap" // ECDH-PSI cardinality
	KindMatch   = "match"   // ECDH-PSI intersection to the querier
)

// Query statuses. A query is proposed to its peers, may wait for a
// person's approval at some of them, then runs and ends done or failed; a
// peer's denial ends it denied, and approvals that do not come in time end
// it expired.
const (
	StatusPending          = "pending" // older records; no longer written
	StatusProposed         = "proposed"
	StatusAwaitingApproval = "awaiting-approval"
	StatusApproved         = "approved" // a participant's record: approved, not yet run
	StatusRunning          = "running"
	StatusDone             = "done"
	StatusFailed           = "failed"
	StatusDenied           = "denied"
	StatusExpired          = "expired"
)

// Finished reports whether a status is final.
func Finished(status string) bool {
	switch status {
	case StatusDone, StatusFailed, StatusDenied, StatusExpired:
		return true
	}
	return false
}

// QueryRequest submits a joint query.
type QueryRequest struct {
	// Plugin names the installed plugin; Kind is its older alias.
	Plugin      string            `json:"plugin,omitempty"`
	Kind        string            `json:"kind,omitempty"`
	Params      map[string]string `json:"params,omitempty"`
	Dataset     string            `json:"dataset"`
	Peers       []string          `json:"peers"`                  // peer names (or peer IDs)
	PeerDataset string            `json:"peer_dataset,omitempty"` // default: same name as Dataset
	Suite       string            `json:"suite,omitempty"`
}

// PluginRef names the exact plugin a query runs.
type PluginRef struct {
	Name    string `json:"name"`
	Version string `json:"version"`
	Digest  string `json:"digest"` // sha256:<hex> of the executable
}

// PeerState is one peer's answer to a proposal.
type PeerState struct {
	Peer   string `json:"peer"`
	Status string `json:"status"` // proposed, awaiting-approval, approved, denied, running, done, failed
	Rule   string `json:"rule,omitempty"`
	Reason string `json:"reason,omitempty"`
}

// DenyRequest carries the reason of a denial.
type DenyRequest struct {
	Reason string `json:"reason"`
}

// PluginInfo is an installed plugin.
type PluginInfo struct {
	Name        string    `json:"name"`
	Version     string    `json:"version"`
	Protocol    string    `json:"protocol"`
	Digest      string    `json:"digest"`
	Path        string    `json:"path"`
	Builtin     bool      `json:"builtin,omitempty"`
	Description string    `json:"description,omitempty"`
	Params      string    `json:"params,omitempty"` // accepted parameters, one per line
	Installed   time.Time `json:"installed"`
}

// InstallPluginRequest installs an executable by absolute path, or a
// built-in plugin of the xnode binary by name.
type InstallPluginRequest struct {
	Path    string `json:"path,omitempty"`
	Builtin string `json:"builtin,omitempty"`
}

// AuditFilter selects audit entries.
type AuditFilter struct {
	QueryID string `json:"query_id,omitempty"`
	Kind    string `json:"kind,omitempty"`
	Limit   int    `json:"limit,omitempty"` // the last Limit entries; 0: all
}

// AuditEntry is one entry of the node's audit chain.
type AuditEntry struct {
	Seq     uint64          `json:"seq"`
	Time    time.Time       `json:"time"`
	Kind    string          `json:"kind"`
	QueryID string          `json:"query_id,omitempty"`
	Actor   string          `json:"actor"`
	Signer  string          `json:"signer"`
	Details json.RawMessage `json:"details,omitempty"`
	Hash    string          `json:"hash"` // hex
}

// AuditReport is the outcome of verifying the audit chain.
type AuditReport struct {
	OK      bool   `json:"ok"`
	Entries uint64 `json:"entries"`
	Head    string `json:"head,omitempty"`
	// FirstBad names the first entry that fails, and why.
	FirstBadSeq uint64 `json:"first_bad_seq,omitempty"`
	Problem     string `json:"problem,omitempty"`
	Detail      string `json:"detail,omitempty"`
}

// Query is a query's record, at the querier or at a responder.
type Query struct {
	ID     string `json:"id"`
	Kind   string `json:"kind"` // the plugin's name
	Role   string `json:"role"` // querier or responder
	Status string `json:"status"`
	Error  string `json:"error,omitempty"`
	// Plugin is the exact plugin the query runs, Params its parameters and
	// Protocol the protocol it needs (psi.cardinality, …).
	Plugin   *PluginRef        `json:"plugin,omitempty"`
	Params   map[string]string `json:"params,omitempty"`
	Protocol string            `json:"protocol,omitempty"`
	// Querier names the node that submitted the query.
	Querier string `json:"querier,omitempty"`
	// PeerStates are the peers' answers to the proposal, with the rule and
	// reason of a denial.
	PeerStates []PeerState `json:"peer_states,omitempty"`
	// Expires is when a proposal without every approval ends expired.
	Expires        time.Time    `json:"expires,omitzero"`
	Dataset        string       `json:"dataset"`
	DatasetVersion uint64       `json:"dataset_version,omitempty"`
	Peers          []string     `json:"peers"`
	PeerDataset    string       `json:"peer_dataset,omitempty"`
	Suite          string       `json:"suite"`
	Created        time.Time    `json:"created"`
	Finished       time.Time    `json:"finished,omitzero"`
	Summary        QuerySummary `json:"summary"`
	Result         *ResultTable `json:"result,omitempty"`
	Progress       *Progress    `json:"progress,omitempty"`
}

// QuerySummary is what a query revealed, in numbers.
type QuerySummary struct {
	// IntersectionSize is the number of shared items: with one peer the size
	// of the intersection, with several the sum over peers.
	IntersectionSize int            `json:"intersection_size"`
	PerPeer          map[string]int `json:"per_peer,omitempty"`
	OwnSize          int            `json:"own_size"`
	PeerSizes        map[string]int `json:"peer_sizes,omitempty"`
	Revealed         string         `json:"revealed,omitempty"` // what each party learned, in words
	// Plugin is the summary the query's plugin wrote, e.g. shares per peer.
	Plugin map[string]string `json:"plugin,omitempty"`
}

// ResultTable is a query's result rows.
type ResultTable struct {
	Columns []string   `json:"columns"`
	Rows    [][]string `json:"rows"`
}

// Progress of a running query.
type Progress struct {
	Peer  string `json:"peer,omitempty"`
	Phase string `json:"phase"`
	Done  int64  `json:"done"`
	Total int64  `json:"total"`
}

// Error is the JSON body of every non-2xx answer.
type Error struct {
	Code    string `json:"code"`    // not_found, invalid, conflict, unavailable, unauthorized, internal
	Message string `json:"message"` // says what to do next
}
