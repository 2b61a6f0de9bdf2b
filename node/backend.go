package node

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"

	"github.com/prometheus/client_golang/prometheus"

	"xnode/node/api"
	"xnode/node/datasets"
	"xnode/node/queries"
	"xnode/protocol/psi/ecdh"
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
		if ctx.Err() != nil {
			return nil, err
		}
		return nil, fmt.Errorf("%w: %v", api.ErrInvalid, err)
	}
	n.log.Info("dataset imported", "name", rep.Name, "version", rep.Version, "rows", rep.Imported)
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

// datasetAdapter gives queries the dataset views they read.
type datasetAdapter struct{ s *datasets.Service }

func (a datasetAdapter) Open(ctx context.Context, name string) (queries.View, error) {
	v, err := a.s.Open(ctx, name, 0)
	if err != nil {
		return nil, mapNotFound(err)
	}
	return &viewAdapter{v: v}, nil
}

type viewAdapter struct{ v *datasets.View }

func (a *viewAdapter) Version() uint64 { return a.v.Version() }
func (a *viewAdapter) Len() int        { return int(a.v.Len()) }
func (a *viewAdapter) Close() error    { return nil }

func (a *viewAdapter) IDs() (ecdh.Source, error) {
	return &idSource{r: a.v.IDs(context.Background()), n: int(a.v.Len())}, nil
}

func (a *viewAdapter) Display(positions []int) ([]string, error) {
	out := make([]string, 0, len(positions))
	for _, p := range positions {
		row, err := a.v.Row(context.Background(), int64(p))
		if err != nil {
			return nil, err
		}
		out = append(out, row.ID)
	}
	return out, nil
}

// idSource adapts a dataset's identifier reader to a protocol Source.
type idSource struct {
	r *datasets.IDReader
	n int
}

func (s *idSource) Len() int                       { return s.n }
func (s *idSource) Next(dst [][]byte) (int, error) { return s.r.Next(dst) }

// registerMetrics adds the node's own metrics to the API's registry.
func (n *Node) registerMetrics(reg *prometheus.Registry) {
	reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "xnode_peers_connected", Help: "Consortium members connected and verified.",
	}, func() float64 { return float64(len(n.host.Peers())) }))
}
