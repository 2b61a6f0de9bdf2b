package api

import (
	"crypto/subtle"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"xnode/node/datasets"
)

// OpenAPI is the OpenAPI 3.0 description of the API, served at
// GET /v1/openapi.yaml.
//
//go:embed openapi.yaml
var OpenAPI []byte

// MaxBodyBytes caps the body of every request.
const MaxBodyBytes = 1 << 20

// DefaultProgressInterval is the least time between two progress lines of
// an import stream.
const DefaultProgressInterval = 200 * time.Millisecond

// Server serves the local API over a Backend. Make one with NewServer.
type Server struct {
	b        Backend
	token    []byte
	log      *slog.Logger
	reg      *prometheus.Registry
	interval time.Duration
	mux      *http.ServeMux
	routes   []string
	metrics  *metrics
}

// Option configures a Server.
type Option func(*Server)

// WithRegistry serves reg at /metrics and registers the API's own metrics
// in it, so the node can add its metrics to the same registry. Without it
// the server uses a registry of its own with the Go and process collectors.
func WithRegistry(reg *prometheus.Registry) Option {
	return func(s *Server) { s.reg = reg }
}

// WithProgressInterval sets the least time between two progress lines of an
// import stream (DefaultProgressInterval otherwise).
func WithProgressInterval(d time.Duration) Option {
	return func(s *Server) { s.interval = d }
}

// NewServer returns the API handler over b. Every route but /metrics needs
// the header "Authorization: Bearer TOKEN". A nil log discards.
func NewServer(b Backend, token string, log *slog.Logger, opts ...Option) *Server {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Server{b: b, token: []byte(token), log: log, interval: DefaultProgressInterval, mux: http.NewServeMux()}
	for _, o := range opts {
		o(s)
	}
	if s.reg == nil {
		s.reg = prometheus.NewRegistry()
		s.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	}
	s.metrics = newMetrics(s.reg)

	s.handle("GET /v1/node", s.getNode)
	s.handle("GET /v1/peers", s.listPeers)
	s.handle("POST /v1/peers", s.addPeer)
	s.handle("POST /v1/datasets", s.importDataset)
	s.handle("GET /v1/datasets", s.listDatasets)
	s.handle("GET /v1/datasets/{name}", s.showDataset)
	s.handle("DELETE /v1/datasets/{name}", s.dropDataset)
	s.handle("POST /v1/queries", s.submitQuery)
	s.handle("GET /v1/queries", s.listQueries)
	// The literal /v1/queries/pending is more specific than
	// /v1/queries/{id}, so net/http routes it first whatever the order.
	s.handle("GET /v1/queries/pending", s.pendingQueries)
	s.handle("GET /v1/queries/{id}", s.getQuery)
	s.handle("POST /v1/queries/{id}/approve", s.approveQuery)
	s.handle("POST /v1/queries/{id}/deny", s.denyQuery)
	s.handle("GET /v1/plugins", s.listPlugins)
	s.handle("POST /v1/plugins", s.installPlugin)
	s.handle("GET /v1/audit", s.audit)
	s.handle("GET /v1/audit/verify", s.verifyAudit)
	s.handle("GET /v1/audit/export", s.exportAudit)
	s.handle("GET /v1/openapi.yaml", s.openAPI)
	s.routes = append(s.routes, "GET /metrics")
	s.mux.Handle("GET /metrics", promhttp.HandlerFor(s.reg, promhttp.HandlerOpts{}))
	return s
}

// Routes returns the patterns the server registers, such as "GET /v1/node".
func (s *Server) Routes() []string { return append([]string(nil), s.routes...) }

func (s *Server) handle(pattern string, h func(http.ResponseWriter, *http.Request)) {
	s.routes = append(s.routes, pattern)
	s.mux.Handle(pattern, s.authenticated(http.HandlerFunc(h)))
}

// ServeHTTP routes the request, answers unknown routes with JSON errors and
// counts every answer by route and status.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	rec := &recorder{ResponseWriter: w, status: http.StatusOK}
	route := "unmatched"
	if _, pattern := s.mux.Handler(r); pattern != "" {
		route = pattern
		s.mux.ServeHTTP(rec, r)
	} else {
		s.unmatched(rec, r)
	}
	s.metrics.observe(route, rec.status, time.Since(start))
}

// unmatched answers a request no route matches: 405 if the path exists with
// another method, 404 otherwise.
func (s *Server) unmatched(w http.ResponseWriter, r *http.Request) {
	var allow []string
	for _, m := range []string{http.MethodGet, http.MethodPost, http.MethodDelete} {
		probe := r.Clone(r.Context())
		probe.Method = m
		if _, p := s.mux.Handler(probe); p != "" {
			allow = append(allow, m)
		}
	}
	if len(allow) > 0 {
		w.Header().Set("Allow", strings.Join(allow, ", "))
		writeJSON(w, http.StatusMethodNotAllowed, &Error{Code: CodeMethod,
			Message: fmt.Sprintf("%s %s is not supported; use %s", r.Method, r.URL.Path, strings.Join(allow, " or "))})
		return
	}
	writeJSON(w, http.StatusNotFound, &Error{Code: CodeNotFound,
		Message: fmt.Sprintf("no API route %s %s; GET /v1/openapi.yaml describes the API", r.Method, r.URL.Path)})
}

func (s *Server) authenticated(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !ok || len(s.token) == 0 || subtle.ConstantTimeCompare([]byte(strings.TrimSpace(tok)), s.token) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="xnode"`)
			writeJSON(w, http.StatusUnauthorized, &Error{Code: CodeUnauthorized,
				Message: "missing or wrong bearer token; send the token from the data dir's api.token"})
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, MaxBodyBytes)
		h.ServeHTTP(w, r)
	})
}

func (s *Server) getNode(w http.ResponseWriter, r *http.Request) {
	info, err := s.b.NodeInfo(r.Context())
	s.reply(w, r, http.StatusOK, info, err)
}

func (s *Server) listPeers(w http.ResponseWriter, r *http.Request) {
	peers, err := s.b.Peers(r.Context())
	s.reply(w, r, http.StatusOK, nonNil(peers), err)
}

func (s *Server) addPeer(w http.ResponseWriter, r *http.Request) {
	var req AddPeerRequest
	if !s.decode(w, r, &req) {
		return
	}
	if req.Name == "" || req.Addr == "" {
		s.fail(w, r, fmt.Errorf("a peer needs a name and an addr (a multiaddr ending in /p2p/<peer ID>): %w", ErrInvalid))
		return
	}
	p, err := s.b.AddPeer(r.Context(), req)
	s.reply(w, r, http.StatusCreated, p, err)
}

func (s *Server) importDataset(w http.ResponseWriter, r *http.Request) {
	var req ImportRequest
	if !s.decode(w, r, &req) {
		return
	}
	switch {
	case req.Name == "":
		s.fail(w, r, fmt.Errorf("the dataset needs a name: %w", ErrInvalid))
		return
	case req.File == "" || !filepath.IsAbs(req.File):
		s.fail(w, r, fmt.Errorf("file %q must be an absolute path the node can read: %w", req.File, ErrInvalid))
		return
	case len(req.IDColumns) == 0:
		s.fail(w, r, fmt.Errorf("name the identifier column(s) in id_columns: %w", ErrInvalid))
		return
	}

	w.Header().Set("Content-Type", "application/x-ndjson")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(http.StatusOK)
	rc := http.NewResponseController(w)
	enc := json.NewEncoder(w)
	var (
		mu       sync.Mutex // guards the stream between progress and the final line
		finished bool
		last     time.Time
	)
	send := func(ev ImportEvent) {
		if err := enc.Encode(ev); err != nil {
			return // the client went away; the request context ends the import
		}
		_ = rc.Flush()
	}
	progress := func(done, total int64) {
		mu.Lock()
		defer mu.Unlock()
		if finished || time.Since(last) < s.interval {
			return
		}
		last = time.Now()
		send(ImportEvent{BytesDone: done, BytesTotal: total})
	}
	rep, err := s.b.ImportDataset(r.Context(), req, progress)
	mu.Lock()
	defer mu.Unlock()
	finished = true
	if err == nil && rep == nil {
		err = errors.New("backend returned no import report")
	}
	if err != nil {
		_, e := classify(err)
		s.logError(r, err, e)
		send(ImportEvent{Error: e})
		return
	}
	send(ImportEvent{Report: rep})
}

func (s *Server) listDatasets(w http.ResponseWriter, r *http.Request) {
	ds, err := s.b.ListDatasets(r.Context())
	s.reply(w, r, http.StatusOK, nonNil(ds), err)
}

func (s *Server) showDataset(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	if err := datasets.ValidName(name); err != nil {
		s.fail(w, r, fmt.Errorf("%v: %w", err, ErrInvalid))
		return
	}
	d, err := s.b.ShowDataset(r.Context(), name)
	if d.Versions == nil {
		d.Versions = []datasets.Info{}
	}
	s.reply(w, r, http.StatusOK, d, err)
}

func (s *Server) dropDataset(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	if err := datasets.ValidName(name); err != nil {
		s.fail(w, r, fmt.Errorf("%v: %w", err, ErrInvalid))
		return
	}
	res, err := s.b.DropDataset(r.Context(), name)
	s.reply(w, r, http.StatusOK, res, err)
}

func (s *Server) submitQuery(w http.ResponseWriter, r *http.Request) {
	var req QueryRequest
	if !s.decode(w, r, &req) {
		return
	}
	switch {
	case req.Plugin != "" && req.Kind != "" && req.Plugin != req.Kind:
		s.fail(w, r, fmt.Errorf("plugin %q and kind %q differ; kind is the older name of plugin, send only plugin: %w", req.Plugin, req.Kind, ErrInvalid))
		return
	case req.Plugin == "" && req.Kind == "":
		s.fail(w, r, fmt.Errorf("the query needs a plugin, such as %s or %s (GET /v1/plugins lists the installed ones): %w", KindOverlap, KindMatch, ErrInvalid))
		return
	case req.Dataset == "":
		s.fail(w, r, fmt.Errorf("the query needs a dataset of this node: %w", ErrInvalid))
		return
	case len(req.Peers) == 0:
		s.fail(w, r, fmt.Errorf("the query needs at least one peer: %w", ErrInvalid))
		return
	}
	// The backend sees both names set to the plugin, whichever was sent.
	if req.Plugin == "" {
		req.Plugin = req.Kind
	}
	req.Kind = req.Plugin
	q, err := s.b.SubmitQuery(r.Context(), req)
	s.reply(w, r, http.StatusAccepted, q, err)
}

func (s *Server) listQueries(w http.ResponseWriter, r *http.Request) {
	qs, err := s.b.ListQueries(r.Context())
	s.reply(w, r, http.StatusOK, nonNil(qs), err)
}

func (s *Server) getQuery(w http.ResponseWriter, r *http.Request) {
	q, err := s.b.GetQuery(r.Context(), r.PathValue("id"))
	s.reply(w, r, http.StatusOK, q, err)
}

func (s *Server) pendingQueries(w http.ResponseWriter, r *http.Request) {
	qs, err := s.b.PendingQueries(r.Context())
	s.reply(w, r, http.StatusOK, nonNil(qs), err)
}

func (s *Server) approveQuery(w http.ResponseWriter, r *http.Request) {
	if !s.emptyBody(w, r) {
		return
	}
	q, err := s.b.ApproveQuery(r.Context(), r.PathValue("id"))
	s.reply(w, r, http.StatusOK, q, err)
}

func (s *Server) denyQuery(w http.ResponseWriter, r *http.Request) {
	var req DenyRequest
	if !s.decode(w, r, &req) {
		return
	}
	req.Reason = strings.TrimSpace(req.Reason)
	if req.Reason == "" {
		s.fail(w, r, fmt.Errorf("a denial needs a reason, which the querier sees: %w", ErrInvalid))
		return
	}
	q, err := s.b.DenyQuery(r.Context(), r.PathValue("id"), req)
	s.reply(w, r, http.StatusOK, q, err)
}

func (s *Server) listPlugins(w http.ResponseWriter, r *http.Request) {
	ps, err := s.b.ListPlugins(r.Context())
	s.reply(w, r, http.StatusOK, nonNil(ps), err)
}

func (s *Server) installPlugin(w http.ResponseWriter, r *http.Request) {
	var req InstallPluginRequest
	if !s.decode(w, r, &req) {
		return
	}
	switch {
	case (req.Path == "") == (req.Builtin == ""):
		s.fail(w, r, fmt.Errorf("name either the path of a plugin executable or a built-in plugin, not both and not neither: %w", ErrInvalid))
		return
	case req.Path != "" && !filepath.IsAbs(req.Path):
		s.fail(w, r, fmt.Errorf("path %q must be an absolute path the node can read: %w", req.Path, ErrInvalid))
		return
	}
	p, err := s.b.InstallPlugin(r.Context(), req)
	s.reply(w, r, http.StatusCreated, p, err)
}

func (s *Server) audit(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	f := AuditFilter{QueryID: q.Get("query"), Kind: q.Get("kind")}
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			s.fail(w, r, fmt.Errorf("limit %q: want a whole number of entries, 0 for all: %w", v, ErrInvalid))
			return
		}
		f.Limit = n
	}
	es, err := s.b.Audit(r.Context(), f)
	s.reply(w, r, http.StatusOK, nonNil(es), err)
}

func (s *Server) verifyAudit(w http.ResponseWriter, r *http.Request) {
	rep, err := s.b.VerifyAudit(r.Context())
	s.reply(w, r, http.StatusOK, rep, err)
}

// ExportErrorTrailer is the HTTP trailer through which GET /v1/audit/export
// reports, as a JSON Error, a failure after the stream began.
const ExportErrorTrailer = "Xnode-Error"

// exportAudit streams the chain as JSON Lines. A failure before the first
// byte is an ordinary error answer; a later one ends the stream and is
// reported in the ExportErrorTrailer trailer.
func (s *Server) exportAudit(w http.ResponseWriter, r *http.Request) {
	if f := r.URL.Query().Get("format"); f != "" && f != "jsonl" {
		s.fail(w, r, fmt.Errorf("format %q: the audit chain exports only as jsonl: %w", f, ErrInvalid))
		return
	}
	sw := &streamWriter{w: w}
	err := s.b.ExportAudit(r.Context(), sw)
	if err == nil {
		if !sw.started {
			sw.start() // an empty chain is an empty stream
		}
		return
	}
	if !sw.started {
		s.fail(w, r, err)
		return
	}
	_, e := classify(err)
	s.logError(r, err, e)
	b, _ := json.Marshal(e)
	w.Header().Set(ExportErrorTrailer, string(b))
}

// streamWriter writes the NDJSON headers, announcing the error trailer,
// before the first byte.
type streamWriter struct {
	w       http.ResponseWriter
	started bool
}

func (sw *streamWriter) start() {
	sw.started = true
	h := sw.w.Header()
	h.Set("Content-Type", "application/x-ndjson")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Trailer", ExportErrorTrailer)
	sw.w.WriteHeader(http.StatusOK)
}

func (sw *streamWriter) Write(p []byte) (int, error) {
	if !sw.started {
		sw.start()
	}
	return sw.w.Write(p)
}

// emptyBody accepts no body, an empty one or {}; anything else is a 400.
func (s *Server) emptyBody(w http.ResponseWriter, r *http.Request) bool {
	b, err := io.ReadAll(r.Body)
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			writeJSON(w, http.StatusRequestEntityTooLarge, &Error{Code: CodeTooLarge,
				Message: fmt.Sprintf("the request body is larger than %d bytes", MaxBodyBytes)})
			return false
		}
		s.fail(w, r, fmt.Errorf("failed to read the request body: %v: %w", err, ErrInvalid))
		return false
	}
	if t := strings.TrimSpace(string(b)); t != "" && t != "{}" {
		writeJSON(w, http.StatusBadRequest, &Error{Code: CodeInvalid, Message: "this route takes no request body"})
		return false
	}
	return true
}

func (s *Server) openAPI(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/yaml")
	_, _ = w.Write(OpenAPI)
}

// decode reads a JSON body into v, answering 400 or 413 itself on failure.
func (s *Server) decode(w http.ResponseWriter, r *http.Request, v any) bool {
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	err := dec.Decode(v)
	if err == nil && dec.More() {
		err = errors.New("more than one JSON value")
	}
	if err == nil {
		return true
	}
	var tooBig *http.MaxBytesError
	if errors.As(err, &tooBig) {
		writeJSON(w, http.StatusRequestEntityTooLarge, &Error{Code: CodeTooLarge,
			Message: fmt.Sprintf("the request body is larger than %d bytes", MaxBodyBytes)})
		return false
	}
	writeJSON(w, http.StatusBadRequest, &Error{Code: CodeInvalid, Message: fmt.Sprintf("the request body is not valid JSON for this route: %v", err)})
	return false
}

// reply writes v with status, or the answer to err if it is not nil.
func (s *Server) reply(w http.ResponseWriter, r *http.Request, status int, v any, err error) {
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, status, v)
}

func (s *Server) fail(w http.ResponseWriter, r *http.Request, err error) {
	status, e := classify(err)
	s.logError(r, err, e)
	writeJSON(w, status, e)
}

func (s *Server) logError(r *http.Request, err error, e *Error) {
	level := slog.LevelDebug
	if e.Code == CodeInternal {
		level = slog.LevelError
	}
	s.log.Log(r.Context(), level, "api request failed", "method", r.Method, "path", r.URL.Path, "code", e.Code, "err", err)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// nonNil makes an empty list encode as [] rather than null.
func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

// recorder remembers the status a handler wrote; Unwrap lets
// http.ResponseController reach the Flusher underneath.
type recorder struct {
	http.ResponseWriter
	status      int
	wroteHeader bool
}

func (r *recorder) WriteHeader(code int) {
	if !r.wroteHeader {
		r.status, r.wroteHeader = code, true
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *recorder) Write(b []byte) (int, error) {
	r.wroteHeader = true
	return r.ResponseWriter.Write(b)
}

func (r *recorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }
