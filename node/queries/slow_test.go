package queries_test

import (
	"bufio"
	"context"
	"encoding/binary"
	"io"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"google.golang.org/protobuf/proto"

	"xnode/crypto"
	"xnode/node/api"
	"xnode/node/membership"
	"xnode/node/queries"
	"xnode/node/queries/pb"
	"xnode/protocol"
	"xnode/protocol/psi/ecdh"
	ecdhpb "xnode/protocol/psi/ecdh/pb"
)

// slowReader reads a stream a few bytes at a time, pausing between reads:
// a member whose link or host is throttled.
type slowReader struct{ r io.Reader }

func (s slowReader) Read(p []byte) (int, error) {
	time.Sleep(20 * time.Millisecond)
	return s.r.Read(p[:min(len(p), 4)])
}

func readFrameFrom(r *bufio.Reader) ([]byte, error) {
	n, err := binary.ReadUvarint(r)
	if err != nil {
		return nil, err
	}
	if n > protocol.MaxMessageSize {
		return nil, protocol.ErrMessageTooLarge
	}
	b := make([]byte, n)
	_, err = io.ReadFull(r, b)
	return b, err
}

// noGoroutineLeft waits for the goroutine count to fall back to before
// (give or take two the runtime may keep) and fails with every stack if it
// does not.
func noGoroutineLeft(t *testing.T, before int) {
	t.Helper()
	settle := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > before+2 && time.Now().Before(settle) {
		time.Sleep(50 * time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > before+2 {
		buf := make([]byte, 1<<20)
		t.Errorf("%d goroutines after the session, %d before:\n%s", n, before, buf[:runtime.Stack(buf, true)])
	}
}

// sessionTimeout is the querier's psi.timeout_seconds in the slow-peer
// tests: a few seconds, so the deadline is what ends the session.
const sessionTimeout = 3 * time.Second

// deadlineSlack bounds how long after its deadline a session may take to
// end, record its failure and be seen by wait's polling on a loaded
// machine.
const deadlineSlack = 5 * time.Second

// TestSlowPeerHitsSessionDeadline: a member accepts a match and then reads
// the querier's stream four bytes every 20 ms. The querier's session ends
// at its deadline: the query fails, its error names the peer, says the
// deadline was hit and what to do; the slow member's stream is let go, no
// goroutine is left, and the next queries — with a well-behaved peer, and
// with the slow member once it behaves — succeed.
func TestSlowPeerHitsSessionDeadline(t *testing.T) {
	c := newConsortium(t)
	a := c.member("bank-a", memDatasets{"clients": {ids: idRange(0, 300)}})
	b := c.member("bank-b", memDatasets{"clients": {ids: idRange(200, 600)}})
	slow := c.member("bank-slow", memDatasets{"clients": {ids: idRange(200, 600)}})
	connect(t, a, b)
	connect(t, a, slow)
	a = a.restart(t, func(cfg *queries.Config) { cfg.Timeout = sessionTimeout })

	// The slow member approves through its queries service, but serves the
	// PSI stream itself: it agrees to run, accepts the querier's Hello and
	// then reads slowly, until the querier lets go of the stream.
	released := make(chan error, 1)
	c.mn.Host(slow.host.ID()).SetStreamHandler(queries.PSIProtocol, func(s network.Stream) {
		defer s.Reset()
		r := bufio.NewReader(slowReader{s})
		send := func(b []byte) error {
			_, err := s.Write(append(binary.AppendUvarint(nil, uint64(len(b))), b...))
			return err
		}
		if _, err := readFrameFrom(r); err != nil { // RunRequest
			released <- err
			return
		}
		if err := send(marshal(t, &pb.Answer{Status: "ok"})); err != nil {
			released <- err
			return
		}
		if _, err := readFrameFrom(r); err != nil { // Hello
			released <- err
			return
		}
		if err := send(marshal(t, &ecdhpb.Envelope{Body: &ecdhpb.Envelope_Accept{Accept: &ecdhpb.Accept{Size: 400}}})); err != nil {
			released <- err
			return
		}
		_, err := io.Copy(io.Discard, r)
		released <- err
	})
	before := runtime.NumGoroutine()

	start := time.Now()
	got := submit(t, a, api.QueryRequest{Plugin: "match", Dataset: "clients", Peers: []string{"bank-slow"}})
	took := time.Since(start)
	if got.Status != api.StatusFailed || got.Result != nil {
		t.Fatalf("match against the slow member = %s %q, want failed without a result", got.Status, got.Error)
	}
	for _, want := range []string{"bank-slow", "deadline", sessionTimeout.String(), "psi.timeout_seconds", "Check the peer and the link"} {
		if !strings.Contains(got.Error, want) {
			t.Errorf("error %q does not say %q", got.Error, want)
		}
	}
	if took < sessionTimeout || took > sessionTimeout+deadlineSlack {
		t.Errorf("the query failed after %v, want at its %v deadline (within %v)", took, sessionTimeout, deadlineSlack)
	}
	select {
	case err := <-released:
		if err == nil {
			t.Error("the querier closed the stream in good order, want it reset at the deadline")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the querier still holds the slow member's stream 10 s after the query failed")
	}
	noGoroutineLeft(t, before)

	t.Run("well-behaved peer", func(t *testing.T) {
		q := submit(t, a, api.QueryRequest{Plugin: "match", Dataset: "clients", Peers: []string{"bank-b"}})
		if q.Status != api.StatusDone || q.Summary.IntersectionSize != 100 {
			t.Errorf("match with bank-b after the timeout = %s %q %d, want done with 100", q.Status, q.Error, q.Summary.IntersectionSize)
		}
	})
	t.Run("the slow member behaving again", func(t *testing.T) {
		slow.restart(t) // its queries service serves the PSI stream again
		q := submit(t, a, api.QueryRequest{Plugin: "match", Dataset: "clients", Peers: []string{"bank-slow"}})
		if q.Status != api.StatusDone || q.Summary.IntersectionSize != 100 {
			t.Errorf("match with bank-slow once it reads at speed = %s %q %d, want done with 100", q.Status, q.Error, q.Summary.IntersectionSize)
		}
	})
}

// TestQuerierStopsReading: a member runs an approved match with the node
// and, once it has sent its query batch, stops reading the node's replies.
// The node's session as responder ends at its own deadline rather than
// holding the stream until the transport's: its record fails naming the
// querier and the deadline, no goroutine is left, and the node then serves
// a genuine query.
func TestQuerierStopsReading(t *testing.T) {
	c := newConsortium(t)
	a := c.member("bank-a", memDatasets{"clients": {ids: idRange(0, 300)}})
	b := c.member("bank-b", memDatasets{"clients": {ids: idRange(200, 600)}})
	rogue := c.member("rogue", memDatasets{"clients": {ids: idRange(0, 100)}})
	connect(t, a, b)
	connect(t, rogue, b)
	b = b.restart(t, func(cfg *queries.Config) { cfg.Timeout = sessionTimeout })
	bid := c.peers["bank-b"]
	before := runtime.NumGoroutine()

	id := approved(t, rogue, bid, "match", "clients", nil) // 100 items
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := rogue.host.Open(ctx, bid, queries.PSIProtocol, membership.RolePSI)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if err := conn.Send(ctx, marshal(t, &pb.RunRequest{QueryId: id})); err != nil {
		t.Fatal(err)
	}
	var ans pb.Answer
	if b, err := conn.Recv(ctx); err != nil || proto.Unmarshal(b, &ans) != nil || ans.Status != "ok" {
		t.Fatalf("run of the approved match = %+v, %v; want ok", &ans, err)
	}
	suite, err := crypto.Lookup(crypto.DefaultSuite)
	if err != nil {
		t.Fatal(err)
	}
	q, err := ecdh.NewQuerier(ecdh.Config{Suite: suite, Mode: ecdh.Intersection, Session: queries.SessionID(id, rogue.host.ID(), bid)}, ecdh.Slice(keys(0, 100)))
	if err != nil {
		t.Fatal(err)
	}
	if err := conn.Send(ctx, next(t, q)); err != nil {
		t.Fatal(err)
	}
	accept, err := conn.Recv(ctx)
	if err != nil {
		t.Fatalf("no Accept from bank-b: %v", err)
	}
	if err := q.Deliver(accept); err != nil {
		t.Fatal(err)
	}
	if err := conn.Send(ctx, next(t, q)); err != nil {
		t.Fatal(err)
	}
	// From here on the rogue reads nothing: bank-b's replies and its own
	// blinded set back up behind the stream.
	rec := wait(t, b, id, api.Finished)
	took := time.Since(start)
	if rec.Status != api.StatusFailed {
		t.Fatalf("bank-b's record of the stalled session = %s %q, want failed", rec.Status, rec.Error)
	}
	for _, want := range []string{"rogue", "deadline", sessionTimeout.String(), "psi.timeout_seconds"} {
		if !strings.Contains(rec.Error, want) {
			t.Errorf("bank-b's error %q does not say %q", rec.Error, want)
		}
	}
	if took < sessionTimeout || took > sessionTimeout+deadlineSlack {
		t.Errorf("bank-b gave up after %v, want at its %v deadline (within %v)", took, sessionTimeout, deadlineSlack)
	}
	if _, err := conn.Recv(ctx); err == nil {
		// A reply sent before the deadline may still be buffered; after
		// it the stream must be gone.
		for err == nil {
			_, err = conn.Recv(ctx)
		}
	}
	if ctx.Err() != nil {
		t.Fatal("bank-b's stream was still open after its deadline")
	}
	_ = conn.Reset()
	noGoroutineLeft(t, before)

	got := submit(t, a, api.QueryRequest{Plugin: "match", Dataset: "clients", Peers: []string{"bank-b"}})
	if got.Status != api.StatusDone || got.Summary.IntersectionSize != 100 {
		t.Errorf("match with bank-b after the stalled session = %s %q %d, want done with 100", got.Status, got.Error, got.Summary.IntersectionSize)
	}
}
