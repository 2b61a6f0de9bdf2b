package oprf

import (
	"fmt"

	"github.com/cloudflare/circl/group"
	"github.com/cloudflare/circl/zk/dleq"

	"xnode/protocol/internal/par"
	"xnode/protocol/internal/wire"
	"xnode/protocol/psi/oprf/pb"
)

func encode(env *pb.Envelope) ([]byte, error) { return wire.Encode("psi-oprf", env) }

// decode parses one frame: exactly one known message within the size cap.
func decode(msg []byte) (*pb.Envelope, error) { return wire.Decode[pb.Envelope](msg, ErrProtocol) }

func (f Form) pb() pb.Form {
	switch f {
	case Labeled:
		return pb.Form_FORM_LABELED
	case Membership:
		return pb.Form_FORM_MEMBERSHIP
	}
	return pb.Form_FORM_UNSPECIFIED
}

func formOf(f pb.Form) Form {
	switch f {
	case pb.Form_FORM_LABELED:
		return Labeled
	case pb.Form_FORM_MEMBERSHIP:
		return Membership
	}
	return 0
}

func refusalError(r pb.Reason) error {
	switch r {
	case pb.Reason_REASON_BUDGET:
		return ErrRefusedBudget
	case pb.Reason_REASON_TOO_LARGE:
		return ErrRefusedTooLarge
	case pb.Reason_REASON_UNSUPPORTED:
		return ErrRefusedUnsupported
	}
	return fmt.Errorf("%w: reason %d", ErrRefused, int32(r))
}

// chunk is the number of elements one goroutine handles at a time.
const chunk = 64

// decodeElements decodes n packed elements, refusing non-canonical
// encodings and the identity.
func decodeElements(packed []byte, workers int) ([]group.Element, error) {
	if len(packed)%ElementSize != 0 {
		return nil, fmt.Errorf("%w: %d bytes is not a whole number of elements", ErrProtocol, len(packed))
	}
	n := len(packed) / ElementSize
	out := make([]group.Element, n)
	err := par.For(par.Workers(workers), n, chunk, func(lo, hi int) error {
		for i := lo; i < hi; i++ {
			e := group.Ristretto255.NewElement()
			if err := e.UnmarshalBinary(packed[i*ElementSize : (i+1)*ElementSize]); err != nil {
				return fmt.Errorf("%w: element %d is not a canonical ristretto255 encoding", ErrProtocol, i)
			}
			if e.IsIdentity() {
				return fmt.Errorf("%w: element %d is the identity", ErrProtocol, i)
			}
			out[i] = e
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

func decodeProof(b []byte) (*dleq.Proof, error) {
	p := new(dleq.Proof)
	if err := p.UnmarshalBinary(group.Ristretto255, b); err != nil {
		return nil, fmt.Errorf("%w: malformed DLEQ proof", ErrProtocol)
	}
	return p, nil
}

// groups splits n elements into proof groups of ProofGroup.
func groups(n int) int { return (n + ProofGroup - 1) / ProofGroup }
