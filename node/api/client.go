package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"xnode/node/config"
	"xnode/node/datasets"
)

// ErrNotRunning is wrapped by the client's errors when nothing answers on
// the node's API address.
var ErrNotRunning = errors.New("node is not running")

// Client is a typed client of the API. It implements Backend, so whatever a
// node offers locally a Client offers remotely.
type Client struct {
	base  string // http://host:port, no trailing slash
	token string
	dir   string // data dir, for messages; may be empty
	hc    *http.Client
}

var _ Backend = (*Client)(nil)

// NewClient returns a client of the API at baseURL (such as
// "http://127.0.0.1:7401") that sends token. A baseURL without a scheme is
// taken as host:port.
func NewClient(baseURL, token string) *Client {
	if !strings.Contains(baseURL, "://") {
		baseURL = "http://" + baseURL
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.Proxy = nil // the API is local; never send the token through a proxy
	tr.DialContext = (&net.Dialer{Timeout: 5 * time.Second}).DialContext
	return &Client{base: strings.TrimRight(baseURL, "/"), token: token, hc: &http.Client{Transport: tr}}
}

// ClientForDir returns a client of the node whose data dir is dir: the
// address is config.toml's api, the token is api.token.
func ClientForDir(dir string) (*Client, error) {
	cfg, err := config.Load(dir)
	if err != nil {
		return nil, err
	}
	tok, err := config.Token(dir)
	if err != nil {
		return nil, err
	}
	c := NewClient(dialAddr(cfg.API), tok)
	c.dir = dir
	return c, nil
}

// dialAddr turns a listen address into one to dial: an unspecified host
// (0.0.0.0, ::, empty) becomes loopback.
func dialAddr(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, port)
}

// BaseURL returns the URL the client talks to.
func (c *Client) BaseURL() string { return c.base }

// NodeInfo returns GET /v1/node.
func (c *Client) NodeInfo(ctx context.Context) (NodeInfo, error) {
	var v NodeInfo
	return v, c.do(ctx, http.MethodGet, "/v1/node", nil, &v)
}

// Peers returns GET /v1/peers.
func (c *Client) Peers(ctx context.Context) ([]PeerInfo, error) {
	var v []PeerInfo
	return v, c.do(ctx, http.MethodGet, "/v1/peers", nil, &v)
}

// AddPeer calls POST /v1/peers.
func (c *Client) AddPeer(ctx context.Context, req AddPeerRequest) (PeerInfo, error) {
	var v PeerInfo
	return v, c.do(ctx, http.MethodPost, "/v1/peers", req, &v)
}

// ImportDataset calls POST /v1/datasets and reads its NDJSON stream,
// calling progress (if not nil) for each progress line. req.File must be an
// absolute path the node can read.
func (c *Client) ImportDataset(ctx context.Context, req ImportRequest, progress func(done, total int64)) (*datasets.Report, error) {
	resp, err := c.send(ctx, http.MethodPost, "/v1/datasets", req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	dec := json.NewDecoder(resp.Body)
	for {
		var ev ImportEvent
		if err := dec.Decode(&ev); err != nil {
			if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
				return nil, fmt.Errorf("the node ended the import of %q without a report; see the node's log and retry", req.Name)
			}
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			return nil, fmt.Errorf("failed to read the import stream: %w", err)
		}
		switch {
		case ev.Error != nil:
			return nil, ev.Error
		case ev.Report != nil:
			return ev.Report, nil
		case progress != nil:
			progress(ev.BytesDone, ev.BytesTotal)
		}
	}
}

// ListDatasets returns GET /v1/datasets.
func (c *Client) ListDatasets(ctx context.Context) ([]datasets.Info, error) {
	var v []datasets.Info
	return v, c.do(ctx, http.MethodGet, "/v1/datasets", nil, &v)
}

// ShowDataset returns GET /v1/datasets/{name}.
func (c *Client) ShowDataset(ctx context.Context, name string) (DatasetDetail, error) {
	var v DatasetDetail
	return v, c.do(ctx, http.MethodGet, "/v1/datasets/"+url.PathEscape(name), nil, &v)
}

// DropDataset calls DELETE /v1/datasets/{name}.
func (c *Client) DropDataset(ctx context.Context, name string) (DropResult, error) {
	var v DropResult
	return v, c.do(ctx, http.MethodDelete, "/v1/datasets/"+url.PathEscape(name), nil, &v)
}

// SubmitQuery calls POST /v1/queries.
func (c *Client) SubmitQuery(ctx context.Context, req QueryRequest) (Query, error) {
	var v Query
	return v, c.do(ctx, http.MethodPost, "/v1/queries", req, &v)
}

// ListQueries returns GET /v1/queries.
func (c *Client) ListQueries(ctx context.Context) ([]Query, error) {
	var v []Query
	return v, c.do(ctx, http.MethodGet, "/v1/queries", nil, &v)
}

// GetQuery returns GET /v1/queries/{id}.
func (c *Client) GetQuery(ctx context.Context, id string) (Query, error) {
	var v Query
	return v, c.do(ctx, http.MethodGet, "/v1/queries/"+url.PathEscape(id), nil, &v)
}

// PendingQueries returns GET /v1/queries/pending.
func (c *Client) PendingQueries(ctx context.Context) ([]Query, error) {
	var v []Query
	return v, c.do(ctx, http.MethodGet, "/v1/queries/pending", nil, &v)
}

// ApproveQuery calls POST /v1/queries/{id}/approve.
func (c *Client) ApproveQuery(ctx context.Context, id string) (Query, error) {
	var v Query
	return v, c.do(ctx, http.MethodPost, "/v1/queries/"+url.PathEscape(id)+"/approve", nil, &v)
}

// DenyQuery calls POST /v1/queries/{id}/deny.
func (c *Client) DenyQuery(ctx context.Context, id string, req DenyRequest) (Query, error) {
	var v Query
	return v, c.do(ctx, http.MethodPost, "/v1/queries/"+url.PathEscape(id)+"/deny", req, &v)
}

// ListPlugins returns GET /v1/plugins.
func (c *Client) ListPlugins(ctx context.Context) ([]PluginInfo, error) {
	var v []PluginInfo
	return v, c.do(ctx, http.MethodGet, "/v1/plugins", nil, &v)
}

// InstallPlugin calls POST /v1/plugins. req.Path must be an absolute path
// the node can read.
func (c *Client) InstallPlugin(ctx context.Context, req InstallPluginRequest) (PluginInfo, error) {
	var v PluginInfo
	return v, c.do(ctx, http.MethodPost, "/v1/plugins", req, &v)
}

// Audit returns GET /v1/audit with f as query parameters.
func (c *Client) Audit(ctx context.Context, f AuditFilter) ([]AuditEntry, error) {
	q := url.Values{}
	if f.QueryID != "" {
		q.Set("query", f.QueryID)
	}
	if f.Kind != "" {
		q.Set("kind", f.Kind)
	}
	if f.Limit != 0 {
		q.Set("limit", strconv.Itoa(f.Limit))
	}
	path := "/v1/audit"
	if len(q) > 0 {
		path += "?" + q.Encode()
	}
	var v []AuditEntry
	return v, c.do(ctx, http.MethodGet, path, nil, &v)
}

// VerifyAudit returns GET /v1/audit/verify. A chain that fails the check is
// not an error: the report says which entry is bad.
func (c *Client) VerifyAudit(ctx context.Context) (AuditReport, error) {
	var v AuditReport
	return v, c.do(ctx, http.MethodGet, "/v1/audit/verify", nil, &v)
}

// ExportAudit copies GET /v1/audit/export, the chain as JSON Lines, to w.
// A failure the node reports after the stream began is returned too, so a
// nil error means w has the whole chain.
func (c *Client) ExportAudit(ctx context.Context, w io.Writer) error {
	resp, err := c.send(ctx, http.MethodGet, "/v1/audit/export?format=jsonl", nil)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if _, err := io.Copy(w, resp.Body); err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return fmt.Errorf("failed to copy the audit export: %w", err)
	}
	if t := resp.Trailer.Get(ExportErrorTrailer); t != "" {
		var e Error
		if err := json.Unmarshal([]byte(t), &e); err != nil || e.Code == "" {
			e = Error{Code: CodeInternal, Message: "the node stopped the audit export: " + t}
		}
		return &e
	}
	return nil
}

// OpenAPI returns GET /v1/openapi.yaml.
func (c *Client) OpenAPI(ctx context.Context) ([]byte, error) {
	resp, err := c.send(ctx, http.MethodGet, "/v1/openapi.yaml", nil)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	return io.ReadAll(resp.Body)
}

// do sends a request and decodes a 2xx JSON answer into out.
func (c *Client) do(ctx context.Context, method, path string, in, out any) error {
	resp, err := c.send(ctx, method, path, in)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("failed to read the node's answer to %s %s: %w", method, path, err)
	}
	return nil
}

// send sends a request and returns a 2xx response; any other status becomes
// an *Error.
func (c *Client) send(ctx context.Context, method, path string, in any) (*http.Response, error) {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return nil, fmt.Errorf("failed to encode the request: %w", err)
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, body)
	if err != nil {
		return nil, fmt.Errorf("failed to make the request: %w", err)
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	req.Header.Set("Accept", "application/json")
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if errors.Is(err, syscall.ECONNREFUSED) {
			return nil, c.notRunning()
		}
		return nil, fmt.Errorf("failed to reach the node at %s: %w", c.base, err)
	}
	if resp.StatusCode/100 == 2 {
		return resp, nil
	}
	defer resp.Body.Close()
	err = decodeError(resp)
	if e, ok := err.(*Error); ok && e.Code == CodeUnauthorized && c.dir != "" {
		e.Message = fmt.Sprintf("the API on %s refused the token in %s; is another node using that address, or was the data dir re-initialised? restart the node with `xnode run --dir %s`",
			strings.TrimPrefix(c.base, "http://"), filepath.Join(c.dir, config.TokenFile), c.dir)
	}
	return nil, err
}

func (c *Client) notRunning() error {
	addr := strings.TrimPrefix(strings.TrimPrefix(c.base, "http://"), "https://")
	if c.dir == "" {
		return fmt.Errorf("no xnode node answers on %s; start it with `xnode run`: %w", addr, ErrNotRunning)
	}
	return &notRunningError{dir: c.dir, addr: addr}
}

type notRunningError struct{ dir, addr string }

func (e *notRunningError) Error() string {
	return fmt.Sprintf("the node at %s is not running (no answer on %s); start it with `xnode run --dir %s`", e.dir, e.addr, e.dir)
}

func (e *notRunningError) Unwrap() error { return ErrNotRunning }

// decodeError reads an Error body; a body that is not one still gives an
// error with the status.
func decodeError(resp *http.Response) error {
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	var e Error
	if err := json.Unmarshal(b, &e); err != nil || e.Code == "" {
		msg := strings.TrimSpace(string(b))
		if msg == "" {
			msg = http.StatusText(resp.StatusCode)
		}
		e = Error{Code: codeForStatus(resp.StatusCode), Message: fmt.Sprintf("the node answered %s: %s", resp.Status, msg)}
	}
	return &e
}

func codeForStatus(status int) string {
	switch status {
	case http.StatusBadRequest:
		return CodeInvalid
	case http.StatusUnauthorized:
		return CodeUnauthorized
	case http.StatusNotFound:
		return CodeNotFound
	case http.StatusConflict:
		return CodeConflict
	case http.StatusRequestEntityTooLarge:
		return CodeTooLarge
	case http.StatusServiceUnavailable:
		return CodeUnavailable
	}
	return CodeInternal
}
