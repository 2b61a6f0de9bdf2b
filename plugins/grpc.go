package plugins

import (
	"context"
	"errors"
	"fmt"
	"io"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"xnode/plugins/pb"
)

// This file carries Plugin over gRPC: server wraps a Plugin as a
// pb.QueryPluginServer, remote wraps a pb.QueryPluginClient as a Plugin.

// ---- conversions ----

func descriptorToPB(d Descriptor) *pb.Descriptor {
	out := &pb.Descriptor{Name: d.Name, Version: d.Version, Description: d.Description,
		Protocol: string(d.Protocol), ResultColumns: d.ResultColumns}
	for _, p := range d.Params {
		out.Params = append(out.Params, &pb.Param{Name: p.Name, Type: string(p.Type), Required: p.Required,
			Default: p.Default, Description: p.Description, Enum: p.Enum})
	}
	for _, u := range d.Reads {
		out.Reads = append(out.Reads, &pb.ColumnUse{Param: u.Param, Role: u.Role, Side: string(u.Side), Description: u.Description})
	}
	return out
}

func descriptorFromPB(d *pb.Descriptor) Descriptor {
	out := Descriptor{Name: d.GetName(), Version: d.GetVersion(), Description: d.GetDescription(),
		Protocol: Protocol(d.GetProtocol()), ResultColumns: d.GetResultColumns()}
	for _, p := range d.GetParams() {
		out.Params = append(out.Params, Param{Name: p.GetName(), Type: ParamType(p.GetType()), Required: p.GetRequired(),
			Default: p.GetDefault(), Description: p.GetDescription(), Enum: p.GetEnum()})
	}
	for _, u := range d.GetReads() {
		out.Reads = append(out.Reads, ColumnUse{Param: u.GetParam(), Role: u.GetRole(), Side: Role(u.GetSide()), Description: u.GetDescription()})
	}
	return out
}

func columnsToPB(cs []Column) []*pb.Column {
	out := make([]*pb.Column, len(cs))
	for i, c := range cs {
		out[i] = &pb.Column{Name: c.Name, Type: string(c.Type), Scale: int32(c.Scale)}
	}
	return out
}

func columnsFromPB(cs []*pb.Column) []Column {
	out := make([]Column, len(cs))
	for i, c := range cs {
		out[i] = Column{Name: c.GetName(), Type: ColumnType(c.GetType()), Scale: int(c.GetScale())}
	}
	return out
}

func rowToPB(r Row) *pb.Row {
	out := &pb.Row{Pos: r.Pos, Key: r.Key, Values: make([]*pb.Value, len(r.Values))}
	for i, v := range r.Values {
		out.Values[i] = &pb.Value{Null: v.Null, Int: v.Int, Text: v.Text}
	}
	return out
}

func rowFromPB(r *pb.Row, dst *Row) {
	dst.Pos, dst.Key = r.GetPos(), r.GetKey()
	dst.Values = dst.Values[:0]
	for _, v := range r.GetValues() {
		dst.Values = append(dst.Values, Value{Null: v.GetNull(), Int: v.GetInt(), Text: v.GetText()})
	}
}

// chunks calls f with consecutive pieces of s of at most MaxChunk.
func chunks[T any](s []T, f func([]T) error) error {
	for len(s) > 0 {
		n := min(len(s), MaxChunk)
		if err := f(s[:n]); err != nil {
			return err
		}
		s = s[n:]
	}
	return nil
}

// ---- errors across the process boundary ----

// toStatus maps a plugin error to a gRPC status for the host.
func toStatus(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, ErrInvalidParams):
		return status.Error(codes.InvalidArgument, err.Error())
	case errors.Is(err, context.Canceled):
		return status.Error(codes.Canceled, err.Error())
	case errors.Is(err, context.DeadlineExceeded):
		return status.Error(codes.DeadlineExceeded, err.Error())
	}
	if _, ok := status.FromError(err); ok {
		return err
	}
	return status.Error(codes.Unknown, err.Error())
}

// remoteError is a plugin's error as the host sees it: the plugin's message,
// matching a sentinel with errors.Is.
type remoteError struct {
	msg      string
	sentinel error
}

func (e *remoteError) Error() string { return e.msg }
func (e *remoteError) Unwrap() error { return e.sentinel }

// fromStatus maps a gRPC error back; a cancelled ctx wins.
func fromStatus(ctx context.Context, name, method string, err error) error {
	if err == nil {
		return nil
	}
	if ctxErr := ctx.Err(); ctxErr != nil {
		return fmt.Errorf("plugin %s %s: %w", name, method, ctxErr)
	}
	st, ok := status.FromError(err)
	if !ok {
		return fmt.Errorf("plugin %s %s: %w", name, method, err)
	}
	switch st.Code() {
	case codes.InvalidArgument:
		return &remoteError{msg: st.Message(), sentinel: ErrInvalidParams}
	case codes.Canceled:
		return &remoteError{msg: fmt.Sprintf("plugin %s %s: %s", name, method, st.Message()), sentinel: context.Canceled}
	case codes.DeadlineExceeded:
		return &remoteError{msg: fmt.Sprintf("plugin %s %s: %s", name, method, st.Message()), sentinel: context.DeadlineExceeded}
	}
	return fmt.Errorf("plugin %s %s failed (%s): %s", name, method, st.Code(), st.Message())
}

// ---- server side: a Plugin served over gRPC ----

type server struct {
	pb.UnimplementedQueryPluginServer
	impl Plugin
}

func (s *server) Describe(ctx context.Context, _ *pb.DescribeRequest) (*pb.Descriptor, error) {
	d, err := s.impl.Describe(ctx)
	if err != nil {
		return nil, toStatus(err)
	}
	return descriptorToPB(d), nil
}

func (s *server) Plan(ctx context.Context, req *pb.PlanRequest) (*pb.QueryPlan, error) {
	p, err := s.impl.Plan(ctx, req.GetParams())
	if err != nil {
		return nil, toStatus(err)
	}
	return &pb.QueryPlan{QuerierColumns: p.QuerierColumns, ResponderColumns: p.ResponderColumns,
		ResultColumns: p.ResultColumns, VectorLen: int32(p.VectorLen)}, nil
}

// streamRows reads row chunks from a Prepare stream.
type streamRows struct {
	st  pb.QueryPlugin_PrepareServer
	buf []Row
}

func (r *streamRows) Next() ([]Row, error) {
	for {
		in, err := r.st.Recv()
		if err != nil {
			return nil, err // io.EOF when the host half-closed
		}
		chunk := in.GetRows()
		if chunk == nil {
			return nil, status.Error(codes.InvalidArgument, "prepare: want a row chunk after start")
		}
		if len(chunk.GetRows()) == 0 {
			continue
		}
		if cap(r.buf) < len(chunk.GetRows()) {
			r.buf = make([]Row, len(chunk.GetRows()))
		}
		r.buf = r.buf[:len(chunk.GetRows())]
		for i, row := range chunk.GetRows() {
			rowFromPB(row, &r.buf[i])
		}
		return r.buf, nil
	}
}

func (s *server) Prepare(st pb.QueryPlugin_PrepareServer) error {
	first, err := st.Recv()
	if err != nil {
		return err
	}
	start := first.GetStart()
	if start == nil {
		return status.Error(codes.InvalidArgument, "prepare: the first message must be start")
	}
	req := PrepareRequest{Params: start.GetParams(), Role: Role(start.GetRole()), Columns: columnsFromPB(start.GetColumns())}
	emit := func(items []Item) error {
		return chunks(items, func(c []Item) error {
			out := &pb.PrepareOut{Items: make([]*pb.Item, len(c))}
			for i, it := range c {
				out.Items[i] = &pb.Item{Pos: it.Pos, Key: it.Key, Label: it.Label, Values: it.Values}
			}
			return st.Send(out)
		})
	}
	return toStatus(s.impl.Prepare(st.Context(), req, &streamRows{st: st}, emit))
}

// streamMatches reads match chunks from a Finalize stream.
type streamMatches struct {
	st  pb.QueryPlugin_FinalizeServer
	buf []Match
}

func (r *streamMatches) Next() ([]Match, error) {
	for {
		in, err := r.st.Recv()
		if err != nil {
			return nil, err
		}
		chunk := in.GetMatches()
		if chunk == nil {
			return nil, status.Error(codes.InvalidArgument, "finalize: want a match chunk after start")
		}
		if len(chunk.GetMatches()) == 0 {
			continue
		}
		if cap(r.buf) < len(chunk.GetMatches()) {
			r.buf = make([]Match, len(chunk.GetMatches()))
		}
		r.buf = r.buf[:len(chunk.GetMatches())]
		for i, m := range chunk.GetMatches() {
			r.buf[i].Peer, r.buf[i].Label = m.GetPeer(), m.GetLabel()
			rowFromPB(m.GetRow(), &r.buf[i].Row)
		}
		return r.buf, nil
	}
}

func (s *server) Finalize(st pb.QueryPlugin_FinalizeServer) error {
	first, err := st.Recv()
	if err != nil {
		return err
	}
	start := first.GetStart()
	if start == nil {
		return status.Error(codes.InvalidArgument, "finalize: the first message must be start")
	}
	req := FinalizeRequest{Params: start.GetParams(), Columns: columnsFromPB(start.GetColumns()),
		OwnSize: start.GetOwnSize(), Aggregate: start.GetAggregate(), Contributors: int(start.GetContributors())}
	for _, p := range start.GetPeers() {
		req.Peers = append(req.Peers, PeerOutput{Peer: p.GetPeer(), Size: p.GetSize(), Cardinality: p.GetCardinality()})
	}
	emit := func(rows []ResultRow) error {
		return chunks(rows, func(c []ResultRow) error {
			out := &pb.ResultChunk{Rows: make([]*pb.ResultRow, len(c))}
			for i, r := range c {
				out.Rows[i] = &pb.ResultRow{Cells: r}
			}
			return st.Send(&pb.FinalizeOut{Msg: &pb.FinalizeOut_Rows{Rows: out}})
		})
	}
	sum, err := s.impl.Finalize(st.Context(), req, &streamMatches{st: st}, emit)
	if err != nil {
		return toStatus(err)
	}
	return st.Send(&pb.FinalizeOut{Msg: &pb.FinalizeOut_Summary{Summary: &pb.Summary{Entries: sum}}})
}

// ---- host side: a Plugin reached over gRPC ----

type remote struct {
	c    pb.QueryPluginClient
	name string // for errors, once known
}

var _ Plugin = (*remote)(nil)

func (r *remote) Describe(ctx context.Context) (Descriptor, error) {
	d, err := r.c.Describe(ctx, &pb.DescribeRequest{})
	if err != nil {
		return Descriptor{}, fromStatus(ctx, r.name, "describe", err)
	}
	return descriptorFromPB(d), nil
}

func (r *remote) Plan(ctx context.Context, params map[string]string) (Plan, error) {
	p, err := r.c.Plan(ctx, &pb.PlanRequest{Params: params})
	if err != nil {
		return Plan{}, fromStatus(ctx, r.name, "plan", err)
	}
	return Plan{QuerierColumns: p.GetQuerierColumns(), ResponderColumns: p.GetResponderColumns(),
		ResultColumns: p.GetResultColumns(), VectorLen: int(p.GetVectorLen())}, nil
}

// pump runs send in a goroutine while recv runs here; if either fails the
// stream's context is cancelled so the other returns. send's own error (a
// failing reader on the host) wins over the stream's.
func pump(ctx context.Context, cancel context.CancelFunc, send func() error, recv func() error) error {
	sendErr := make(chan error, 1)
	go func() {
		err := send()
		if err != nil {
			cancel()
		}
		sendErr <- err
	}()
	rerr := recv()
	if rerr != nil {
		cancel()
	}
	if serr := <-sendErr; serr != nil {
		return serr
	}
	return rerr
}

func (r *remote) Prepare(ctx context.Context, req PrepareRequest, rows RowReader, emit func([]Item) error) error {
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	st, err := r.c.Prepare(sctx)
	if err != nil {
		return fromStatus(ctx, r.name, "prepare", err)
	}
	start := &pb.PrepareIn{Msg: &pb.PrepareIn_Start{Start: &pb.PrepareStart{
		Params: req.Params, Role: string(req.Role), Columns: columnsToPB(req.Columns)}}}
	send := func() error {
		if err := st.Send(start); err != nil {
			return nil // the stream failed; Recv reports why
		}
		for {
			chunk, err := rows.Next()
			if err == io.EOF {
				return st.CloseSend()
			}
			if err != nil {
				return err
			}
			err = chunks(chunk, func(c []Row) error {
				msg := &pb.RowChunk{Rows: make([]*pb.Row, len(c))}
				for i, row := range c {
					msg.Rows[i] = rowToPB(row)
				}
				return st.Send(&pb.PrepareIn{Msg: &pb.PrepareIn_Rows{Rows: msg}})
			})
			if err != nil {
				return nil // the plugin ended the stream; Recv reports how
			}
		}
	}
	var items []Item
	recv := func() error {
		for {
			out, err := st.Recv()
			if err == io.EOF {
				return nil
			}
			if err != nil {
				return fromStatus(ctx, r.name, "prepare", err)
			}
			items = items[:0]
			for _, it := range out.GetItems() {
				items = append(items, Item{Pos: it.GetPos(), Key: it.GetKey(), Label: it.GetLabel(), Values: it.GetValues()})
			}
			if err := emit(items); err != nil {
				return err
			}
		}
	}
	return pump(ctx, cancel, send, recv)
}

func (r *remote) Finalize(ctx context.Context, req FinalizeRequest, matches MatchReader, emit func([]ResultRow) error) (Summary, error) {
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	st, err := r.c.Finalize(sctx)
	if err != nil {
		return nil, fromStatus(ctx, r.name, "finalize", err)
	}
	start := &pb.FinalizeStart{Params: req.Params, Columns: columnsToPB(req.Columns), OwnSize: req.OwnSize,
		Aggregate: req.Aggregate, Contributors: int32(req.Contributors)}
	for _, p := range req.Peers {
		start.Peers = append(start.Peers, &pb.PeerOutput{Peer: p.Peer, Size: p.Size, Cardinality: p.Cardinality})
	}
	send := func() error {
		if err := st.Send(&pb.FinalizeIn{Msg: &pb.FinalizeIn_Start{Start: start}}); err != nil {
			return nil
		}
		for {
			chunk, err := matches.Next()
			if err == io.EOF {
				return st.CloseSend()
			}
			if err != nil {
				return err
			}
			err = chunks(chunk, func(c []Match) error {
				msg := &pb.MatchChunk{Matches: make([]*pb.Match, len(c))}
				for i, m := range c {
					msg.Matches[i] = &pb.Match{Peer: m.Peer, Row: rowToPB(m.Row), Label: m.Label}
				}
				return st.Send(&pb.FinalizeIn{Msg: &pb.FinalizeIn_Matches{Matches: msg}})
			})
			if err != nil {
				return nil
			}
		}
	}
	var sum Summary
	var rows []ResultRow
	recv := func() error {
		for {
			out, err := st.Recv()
			if err == io.EOF {
				if sum == nil {
					return fmt.Errorf("plugin %s finalize: the plugin ended without a summary", r.name)
				}
				return nil
			}
			if err != nil {
				return fromStatus(ctx, r.name, "finalize", err)
			}
			if s := out.GetSummary(); s != nil {
				sum = Summary(s.GetEntries())
				if sum == nil {
					sum = Summary{}
				}
				continue
			}
			if sum != nil {
				return fmt.Errorf("plugin %s finalize: result rows after the summary", r.name)
			}
			rows = rows[:0]
			for _, row := range out.GetRows().GetRows() {
				rows = append(rows, ResultRow(row.GetCells()))
			}
			if err := emit(rows); err != nil {
				return err
			}
		}
	}
	if err := pump(ctx, cancel, send, recv); err != nil {
		return nil, err
	}
	return sum, nil
}
