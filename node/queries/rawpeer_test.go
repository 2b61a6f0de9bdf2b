package queries_test

import (
	"bufio"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	libp2pproto "github.com/libp2p/go-libp2p/core/protocol"
	"google.golang.org/protobuf/proto"

	"xnode/node/api"
	"xnode/node/queries"
	"xnode/node/queries/pb"
	"xnode/protocol"
)

// rawSession is a protocol stream a test peer opened to a node over the
// bare libp2p host, below p2p.StreamConn's framing, so that it can write
// any bytes: oversized length prefixes, truncated frames. A goroutine reads
// the node's frames until the node ends the stream.
type rawSession struct {
	t      *testing.T
	s      network.Stream
	frames chan []byte
	stop   chan struct{}
	done   chan struct{}
	err    error // why the stream ended for reading; set before done closes
}

func openRaw(t *testing.T, c *consortium, from *member, to peer.ID, id libp2pproto.ID) *rawSession {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := c.mn.Host(from.host.ID()).NewStream(ctx, to, id)
	if err != nil {
		t.Fatalf("open %s to %s: %v", id, to, err)
	}
	r := &rawSession{t: t, s: s, frames: make(chan []byte, 1024), stop: make(chan struct{}), done: make(chan struct{})}
	go r.read()
	t.Cleanup(func() {
		close(r.stop)
		_ = s.Reset()
		<-r.done
	})
	return r
}

func (r *rawSession) read() {
	defer close(r.done)
	br := bufio.NewReader(r.s)
	for {
		n, err := binary.ReadUvarint(br)
		if err != nil {
			r.err = err
			return
		}
		if n > protocol.MaxMessageSize {
			r.err = fmt.Errorf("the node sent a length prefix of %d", n)
			return
		}
		b := make([]byte, n)
		if _, err := io.ReadFull(br, b); err != nil {
			r.err = err
			return
		}
		select {
		case r.frames <- b:
		case <-r.stop:
			return
		}
	}
}

// write writes raw bytes.
func (r *rawSession) write(b []byte) {
	r.t.Helper()
	if _, err := r.s.Write(b); err != nil {
		r.t.Fatalf("write to the node: %v", err)
	}
}

// send writes one frame.
func (r *rawSession) send(msg []byte) {
	r.t.Helper()
	r.write(append(binary.AppendUvarint(nil, uint64(len(msg))), msg...))
}

func (r *rawSession) closeWrite() {
	r.t.Helper()
	if err := r.s.CloseWrite(); err != nil {
		r.t.Fatalf("close the stream for writing: %v", err)
	}
}

// recv returns the node's next frame.
func (r *rawSession) recv() []byte {
	r.t.Helper()
	select {
	case b := <-r.frames:
		return b
	case <-r.done:
		select {
		case b := <-r.frames:
			return b
		default:
		}
		r.t.Fatalf("the node ended the stream (%v) where a message was wanted", r.err)
	case <-time.After(15 * time.Second):
		r.t.Fatal("no message from the node in 15 s")
	}
	return nil
}

// ended waits for the node to end the stream and returns the frames it
// sent before that.
func (r *rawSession) ended() [][]byte {
	r.t.Helper()
	var got [][]byte
	timeout := time.After(15 * time.Second)
	for {
		select {
		case b := <-r.frames:
			got = append(got, b)
		case <-r.done:
			for {
				select {
				case b := <-r.frames:
					got = append(got, b)
				default:
					return got
				}
			}
		case <-timeout:
			r.t.Fatalf("the node kept the stream open 15 s after the hostile message (%d frames from it)", len(got))
		}
	}
}

// run asks the node to run approved query id and checks it agreed.
func (r *rawSession) run(id string) {
	r.t.Helper()
	r.send(marshal(r.t, &pb.RunRequest{QueryId: id}))
	var ans pb.Answer
	if err := proto.Unmarshal(r.recv(), &ans); err != nil {
		r.t.Fatal(err)
	}
	if ans.Status != "ok" {
		r.t.Fatalf("run of approved query %s = %+v, want ok", id, &ans)
	}
}

// approved has m propose a query of plugin on dataset to the node at to,
// mutate adjusting the proposal, and returns its id once the node approved.
func approved(t *testing.T, m *member, to peer.ID, plugin, dataset string, mutate func(*pb.Proposal)) string {
	t.Helper()
	inst, err := m.reg.Get(plugin)
	if err != nil {
		t.Fatal(err)
	}
	id := newQueryID(t)
	msg := signedProposal(t, m, id, func(p *pb.Proposal) {
		p.PluginName, p.PluginVersion, p.PluginDigest, p.Protocol, p.Dataset = plugin, inst.Version, inst.Digest, string(inst.Protocol), dataset
		if mutate != nil {
			mutate(p)
		}
	}, false)
	ans, err := rogueSession(t, m, to, queries.ControlProtocol, "", msg)
	if err != nil || ans.Status != api.StatusApproved {
		t.Fatalf("proposal of %s on %s = %+v, %v; want approved", plugin, dataset, ans, err)
	}
	return id
}

// frame is a length prefix and body, for writing by hand.
func frame(n uint64, body []byte) []byte { return append(binary.AppendUvarint(nil, n), body...) }
