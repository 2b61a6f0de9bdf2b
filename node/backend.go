package node

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"xnode/node/api"
	"xnode/node/audit"
	"xnode/node/datasets"
	"xnode/node/registry"
	"xnode/node/store"
)

var _ api.Backend = (*Node)(nil)

// NodeInfo implements api.Backend.
func (n *Node) NodeInfo(_ context.Context) (api.NodeInfo, error) {
	n.mu.Lock()
	name := n.cfg.Name
	n.mu.Unlock()
	info := api.NodeInfo{Name: name, PeerID: n.id.ID().String(), API: n.APIAddr(), Version: Version}
	for _, a := range n.host.Addrs() {
		info.Addrs = append(info.Addrs, a.String()+"/p2p/"+n.id.ID().String())
	}
	if c := n.host.Cert(); c != nil {
		info.Org, info.Roles = c.Org, c.Roles
	}
	if n.cons != nil {
		info.Consortium = n.cons.Name
	}
	return info, nil
}

// ImportDataset implements api.Backend.
func (n *Node) ImportDataset(ctx context.Context, req api.ImportRequest, progress func(done, total int64)) (*datasets.Report, error) {
	if !filepath.IsAbs(req.File) {
		return nil, fmt.Errorf("%w: the file path %q must be absolute (the node resolves it, not the CLI's directory)", api.ErrInvalid, req.File)
	}
	rep, err := n.data.Import(ctx, datasets.ImportOptions{
		Name: req.Name, File: req.File, Format: datasets.Format(req.Format),
		IDColumns: req.IDColumns, IDKind: req.IDKind,
		ValueColumns: req.ValueColumns, LabelColumns: req.LabelColumns,
		Encoding: req.Encoding, Strict: req.Strict, Progress: progress,
	})
	if err != nil {
		switch {
		case ctx.Err() != nil:
			return nil, err
		case errors.Is(err, store.ErrDiskFull):
			// Not the request's fault: the same import succeeds once there is room.
			return nil, fmt.Errorf("%w: %v", api.ErrUnavailable, err)
		}
		return nil, fmt.Errorf("%w: %v", api.ErrInvalid, err)
	}
	n.log.Info("dataset imported", "name", rep.Name, "version", rep.Version, "rows", rep.Imported)
	n.auditf(audit.KindImport, "", audit.ActorLocal, map[string]any{
		"dataset": rep.Name, "version": rep.Version, "source": rep.Source, "rows_read": rep.RowsRead,
		"imported": rep.Imported, "duplicates": rep.Duplicates, "invalid": rep.Invalid, "id_kind": rep.IDKind,
	})
	return rep, nil
}

// ListDatasets implements api.Backend.
func (n *Node) ListDatasets(ctx context.Context) ([]datasets.Info, error) {
	return n.data.List(ctx)
}

// ShowDataset implements api.Backend.
func (n *Node) ShowDataset(ctx context.Context, name string) (api.DatasetDetail, error) {
	info, err := n.data.Show(ctx, name)
	if err != nil {
		return api.DatasetDetail{}, mapNotFound(err)
	}
	versions, err := n.data.Versions(ctx, name)
	if err != nil {
		return api.DatasetDetail{}, mapNotFound(err)
	}
	return api.DatasetDetail{Info: info, Versions: versions}, nil
}

// DropDataset implements api.Backend.
func (n *Node) DropDataset(ctx context.Context, name string) (api.DropResult, error) {
	k, err := n.data.Drop(ctx, name)
	if err != nil {
		return api.DropResult{}, mapNotFound(err)
	}
	n.log.Info("dataset dropped", "name", name, "versions", k)
	n.auditf(audit.KindDrop, "", audit.ActorLocal, map[string]any{"dataset": name, "versions": k})
	return api.DropResult{Name: name, Versions: k}, nil
}

// SubmitQuery implements api.Backend.
func (n *Node) SubmitQuery(ctx context.Context, req api.QueryRequest) (api.Query, error) {
	return n.query.Submit(ctx, req)
}

// ListQueries implements api.Backend.
func (n *Node) ListQueries(ctx context.Context) ([]api.Query, error) {
	return n.query.List(ctx)
}

// GetQuery implements api.Backend.
func (n *Node) GetQuery(ctx context.Context, id string) (api.Query, error) {
	return n.query.Get(ctx, id)
}

func mapNotFound(err error) error {
	if errors.Is(err, datasets.ErrNotFound) {
		return fmt.Errorf("%w: %v", api.ErrNotFound, err)
	}
	return err
}

// registerMetrics adds the node's own metrics to the API's registry, with
// the Go runtime's (go_goroutines, go_memstats_…) and the process's
// (process_resident_memory_bytes, open fds) that operators watch.
func (n *Node) registerMetrics(reg *prometheus.Registry) {
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "xnode_peers_connected", Help: "Consortium members connected and verified.",
	}, func() float64 { return float64(len(n.host.Peers())) }))
}

// PendingQueries implements api.Backend.
func (n *Node) PendingQueries(ctx context.Context) ([]api.Query, error) {
	return n.query.Pending(ctx)
}

// ApproveQuery implements api.Backend.
func (n *Node) ApproveQuery(ctx context.Context, id string) (api.Query, error) {
	return n.query.Approve(ctx, id)
}

// DenyQuery implements api.Backend.
func (n *Node) DenyQuery(ctx context.Context, id string, req api.DenyRequest) (api.Query, error) {
	return n.query.Deny(ctx, id, req.Reason)
}

// ListPlugins implements api.Backend.
func (n *Node) ListPlugins(_ context.Context) ([]api.PluginInfo, error) {
	ps, err := n.plugs.List()
	if err != nil {
		return nil, err
	}
	out := make([]api.PluginInfo, 0, len(ps))
	for _, p := range ps {
		out = append(out, pluginInfo(p))
	}
	return out, nil
}

func pluginInfo(p registry.Plugin) api.PluginInfo {
	return api.PluginInfo{
		Name: p.Name, Version: p.Version, Protocol: string(p.Protocol), Digest: p.Digest,
		Path: p.Path, Builtin: p.Builtin, Description: p.Description, Params: p.Params, Installed: p.Installed,
	}
}

// InstallPlugin implements api.Backend.
func (n *Node) InstallPlugin(ctx context.Context, req api.InstallPluginRequest) (api.PluginInfo, error) {
	var (
		p   registry.Plugin
		err error
	)
	switch {
	case req.Builtin != "" && req.Path != "":
		return api.PluginInfo{}, fmt.Errorf("%w: give a path or a built-in name, not both", api.ErrInvalid)
	case req.Builtin != "":
		if !slices.Contains(registry.Builtins, req.Builtin) {
			return api.PluginInfo{}, fmt.Errorf("%w: no built-in plugin %q (built-ins: %s)", api.ErrInvalid, req.Builtin, strings.Join(registry.Builtins, ", "))
		}
		exe, xerr := os.Executable()
		if xerr != nil {
			return api.PluginInfo{}, xerr
		}
		p, err = n.plugs.Install(ctx, exe, registry.ServeArgs(req.Builtin), true)
	case req.Path != "":
		if !filepath.IsAbs(req.Path) {
			return api.PluginInfo{}, fmt.Errorf("%w: the plugin path %q must be absolute", api.ErrInvalid, req.Path)
		}
		p, err = n.plugs.Install(ctx, req.Path, nil, false)
	default:
		return api.PluginInfo{}, fmt.Errorf("%w: give the plugin's path, or --builtin NAME", api.ErrInvalid)
	}
	if err != nil {
		return api.PluginInfo{}, fmt.Errorf("%w: %v", api.ErrInvalid, err)
	}
	n.auditf(audit.Kind("plugin-install"), "", audit.ActorLocal, map[string]any{"name": p.Name, "version": p.Version, "digest": p.Digest, "path": p.Path, "builtin": p.Builtin})
	return pluginInfo(p), nil
}

// Audit implements api.Backend.
func (n *Node) Audit(ctx context.Context, f api.AuditFilter) ([]api.AuditEntry, error) {
	entries, err := n.audit.List(ctx, audit.Filter{QueryID: f.QueryID, Kind: audit.Kind(f.Kind), Limit: f.Limit, Tail: f.Limit > 0})
	if err != nil {
		return nil, err
	}
	out := make([]api.AuditEntry, 0, len(entries))
	for _, e := range entries {
		out = append(out, api.AuditEntry{
			Seq: e.Seq, Time: e.Time, Kind: string(e.Kind), QueryID: e.QueryID, Actor: e.Actor,
			Signer: e.Signer, Details: e.Details, Hash: hex.EncodeToString(e.Hash),
		})
	}
	return out, nil
}

// VerifyAudit implements api.Backend.
func (n *Node) VerifyAudit(ctx context.Context) (api.AuditReport, error) {
	rep, err := n.audit.Verify(ctx)
	if err != nil {
		return api.AuditReport{}, err
	}
	out := api.AuditReport{OK: rep.OK, Entries: rep.Entries, Head: rep.Head}
	if rep.FirstBad != nil {
		out.FirstBadSeq, out.Problem, out.Detail = rep.FirstBad.Seq, string(rep.FirstBad.Problem), rep.FirstBad.Detail
	}
	return out, nil
}

// ExportAudit implements api.Backend.
func (n *Node) ExportAudit(ctx context.Context, w io.Writer) error {
	return n.audit.Export(ctx, w, audit.FormatJSONL)
}

// auditf appends to the audit chain, logging a failure.
func (n *Node) auditf(kind audit.Kind, queryID, actor string, details any) {
	d, err := audit.Details(details)
	if err == nil {
		_, err = n.audit.Append(n.ctx, audit.Entry{Kind: kind, QueryID: queryID, Actor: actor, Details: d})
	}
	if err != nil {
		n.log.Error("failed to append to the audit chain", "kind", kind, "err", err)
	}
}
