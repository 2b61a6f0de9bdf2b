// Package secaggtest drives a secure-aggregation session in memory: one
// server and N clients exchanging messages through a FIFO queue, with chosen
// clients dropping out at chosen rounds, a tap on every message and a hook
// to tamper with them. Tests and benchmarks use it; the node does not.
package secaggtest

import (
	"crypto/ed25519"
	"crypto/sha256"
	"fmt"
	"io"

	"xnode/protocol/secagg"
)

// Server is the sender or receiver name the hooks use for the server.
const Server secagg.ClientID = ""

// Identities is a set of Ed25519 identity keys for a roster.
type Identities struct {
	Clients []secagg.ClientID
	keys    map[secagg.ClientID]ed25519.PrivateKey
}

// NewIdentities makes n clients named client-00, client-01, … with Ed25519
// keys derived from their names (deterministic, for tests only).
func NewIdentities(n int) *Identities {
	id := &Identities{keys: make(map[secagg.ClientID]ed25519.PrivateKey, n)}
	for i := range n {
		name := secagg.ClientID(fmt.Sprintf("client-%02d", i))
		seed := sha256.Sum256([]byte("secaggtest identity " + name))
		id.Clients = append(id.Clients, name)
		id.keys[name] = ed25519.NewKeyFromSeed(seed[:])
	}
	return id
}

// Signer returns the signer of client c.
func (id *Identities) Signer(c secagg.ClientID) secagg.Signer {
	k := id.keys[c]
	return secagg.SignerFunc(func(msg []byte) ([]byte, error) { return ed25519.Sign(k, msg), nil })
}

// Verify checks a signature with the roster's public keys.
func (id *Identities) Verify(c secagg.ClientID, msg, sig []byte) bool {
	k, ok := id.keys[c]
	return ok && len(sig) == ed25519.SignatureSize && ed25519.Verify(k.Public().(ed25519.PublicKey), msg, sig)
}

// Options shape a run.
type Options struct {
	// Drop makes a client go silent from the given round on: it does not
	// send its message of that round or any later one (RoundAdvertise: it
	// never starts; RoundShareKeys: it advertised but does not share;
	// RoundMaskedInput: it shared but sends no masked input; RoundConsistency:
	// it sent its masked input; RoundUnmask: it signed the survivor set).
	Drop map[secagg.ClientID]secagg.Round
	// Signers overrides a client's signer (default: its identity key).
	Signers map[secagg.ClientID]secagg.Signer
	// Rand gives each client its randomness (default crypto/rand).
	Rand func(c secagg.ClientID) io.Reader
	// Tamper, if set, sees every message before it is delivered and returns
	// what is delivered instead (nil: the message is lost).
	Tamper func(from, to secagg.ClientID, msg []byte) []byte
	// Tap, if set, sees every message as delivered.
	Tap func(from, to secagg.ClientID, msg []byte)
}

// Result is what a run produced.
type Result struct {
	// Sum, Survivors and Err are the server's Result.
	Sum       []uint64
	Survivors []secagg.ClientID
	Err       error
	// ServerErrors are errors Deliver returned (each dropped a client).
	ServerErrors []error
	// ClientErrors are the errors that ended clients.
	ClientErrors map[secagg.ClientID]error
	// Sent and Received count message bytes per client (to and from the
	// server).
	Sent, Received map[secagg.ClientID]int64
	// Rounds is how many times the driver had to end a round at its
	// deadline (EndRound) because some client stayed silent.
	Deadlines int
}

type envelope struct {
	from, to secagg.ClientID
	msg      []byte
}

// Run runs one session of cfg over ids, where client i holds inputs[i].
func Run(cfg secagg.Config, ids *Identities, inputs [][]uint64, opts Options) (*Result, error) {
	srv, err := secagg.NewServer(secagg.ServerConfig{Config: cfg})
	if err != nil {
		return nil, err
	}
	res := &Result{
		ClientErrors: make(map[secagg.ClientID]error),
		Sent:         make(map[secagg.ClientID]int64),
		Received:     make(map[secagg.ClientID]int64),
	}
	clients := make(map[secagg.ClientID]*secagg.Client, len(cfg.Clients))
	responses := make(map[secagg.ClientID]secagg.Round) // round of the client's next message
	dead := make(map[secagg.ClientID]bool)
	silent := func(c secagg.ClientID) bool {
		r, ok := opts.Drop[c]
		return ok && responses[c] >= r
	}
	var queue []envelope
	push := func(from, to secagg.ClientID, msgs ...[]byte) {
		for _, m := range msgs {
			queue = append(queue, envelope{from, to, m})
		}
	}
	pushOut := func(out []secagg.Outgoing) {
		for _, o := range out {
			push(Server, o.To, o.Msg)
		}
	}
	for i, c := range cfg.Clients {
		ccfg := cfg
		if opts.Rand != nil {
			ccfg.Rand = opts.Rand(c)
		}
		signer := ids.Signer(c)
		if s, ok := opts.Signers[c]; ok {
			signer = s
		}
		cl, err := secagg.NewClient(secagg.ClientConfig{Config: ccfg, Self: c, Signer: signer}, inputs[i])
		if err != nil {
			return nil, err
		}
		clients[c] = cl
		if silent(c) {
			dead[c] = true
			continue
		}
		msg, err := cl.Start()
		if err != nil {
			return nil, err
		}
		responses[c]++
		push(c, Server, msg)
	}
	for !srv.Done() {
		if len(queue) == 0 {
			res.Deadlines++
			out, _ := srv.EndRound()
			pushOut(out)
			continue
		}
		e := queue[0]
		queue = queue[1:]
		msg := e.msg
		if opts.Tamper != nil {
			if msg = opts.Tamper(e.from, e.to, msg); msg == nil {
				continue
			}
		}
		if opts.Tap != nil {
			opts.Tap(e.from, e.to, msg)
		}
		if e.to == Server {
			res.Sent[e.from] += int64(len(msg))
			out, err := srv.Deliver(e.from, msg)
			if err != nil {
				res.ServerErrors = append(res.ServerErrors, err)
				out, _ = srv.Drop(e.from)
			}
			pushOut(out)
			continue
		}
		c := e.to
		if dead[c] {
			continue
		}
		res.Received[c] += int64(len(msg))
		replies, err := clients[c].Deliver(msg)
		if err != nil {
			// The client resets its stream; the server notices and drops it.
			res.ClientErrors[c] = err
			dead[c] = true
			out, _ := srv.Drop(c)
			pushOut(out)
			continue
		}
		if silent(c) {
			dead[c] = true
			continue
		}
		if len(replies) > 0 {
			responses[c]++
		}
		push(c, Server, replies...)
	}
	res.Sum, res.Survivors, res.Err = srv.Result()
	return res, nil
}
