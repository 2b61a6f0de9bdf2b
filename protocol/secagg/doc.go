// Package secagg is secure aggregation with dropouts: Bonawitz, Ivanov,
// Kreuter, Marcedone, McMahan, Patel, Ramage, Segal and Seth, "Practical
// Secure Aggregation for Privacy-Preserving Machine Learning" (CCS 2017),
// the version with signed key advertisements and the consistency check, as
// sans-I/O state machines. One [Server] (the aggregator: the querier's node)
// and N [Client]s (the participants, the querier's own node included, run
// locally) each hold a vector of VectorLen elements mod 2^64; the server
// learns only the sum over the clients that survive, and only if at least t
// do.
//
// # Message flow
//
// Stream protocol /xnode/secagg/1.0.0, one Envelope per frame. Clients talk
// only to the server; U1 ⊇ U2 ⊇ U3 ⊇ U4 ⊇ U5 are the clients still in the
// session after each round, and every round needs at least t of them.
//
//	Client u (x_u, identity key)                    Server
//	 0 Advertise{c_pk, s_pk, sig_u(session, u, c_pk, s_pk)} ──▶  verifies, collects U1
//	                   ◀── AdvertiseList{every advert of U1}       (to each of U1)
//	   verifies every signature, refuses repeated keys
//	 1 Shares{Enc_uv(u, v, [s]_v, [b]_v) for v ∈ U1∖u} ──────▶   collects U2, routes
//	                   ◀── Shares{Enc_vu(…) for v ∈ U2∖u}          (to each of U2)
//	 2 MaskedInput{y_u} in chunks ─────────────────────────▶    sums y_u over U3
//	   y_u = x_u + PRG(b_u) + Σ_{v∈U2, v>u} PRG(s_uv) − Σ_{v∈U2, v<u} PRG(s_uv)
//	                   ◀── ConsistencyRequest{U3}                  (to each of U3)
//	 3 ConsistencySig{sig_u(session, u, U3)} ─────────────▶      verifies, collects U4
//	                   ◀── UnmaskRequest{U3, U2∖U3, sigs of U4}    (to each of U4)
//	   checks U3 is what it signed, U2∖U3 is the rest of U2, the two
//	   are disjoint, and at least t valid signatures on U3
//	 4 Unmask{[b_v] for v ∈ U3, [s_v] for v ∈ U2∖U3} ──────▶   collects U5; with t shares
//	                                                           each rebuilds b_v (v ∈ U3)
//	                                                           and s_sk_v (v ∈ U2∖U3), and
//	                                                           Σ_{U3} x_u = Σ y_u − masks
//
// Keys and derivations (all bound to the session id, every label prefixed
// "xnode-v1:secagg:"):
//
//   - c and s are X25519 key pairs (circl dh/x25519). c_sk is 32 random
//     bytes. s_sk = HKDF-SHA256(σ_u) for a ristretto255 scalar σ_u, and the
//     self-mask seed is HKDF-SHA256(β_u) for a scalar β_u: the scalars are
//     what is Shamir-shared, t-of-n (circl secretsharing over the
//     ristretto255 scalar field, x-coordinate of client i is i+1), so
//     reconstructing a scalar gives the full 32-byte seed. A scalar carries
//     ~252 bits of entropy. The server checks that a rebuilt s_sk matches the
//     advertised s_pk.
//   - Shares travel in AES-256-GCM under HKDF(X25519(c_sk_u, c_pk_v)) with
//     the direction (u, v) in the info, so each key seals one message (zero
//     nonce); the plaintext repeats u and v and the recipient checks them.
//   - s_uv = HKDF(X25519(s_sk_u, s_pk_v), info with min(u,v), max(u,v)).
//   - PRG(k) is AES-256-CTR under the full 32-byte k with a zero IV, read as
//     little-endian uint64s. Every seed keys exactly one expansion.
//   - Signatures are the node's identity signatures through [Signer] and
//     [Verifier]; the signed messages are length-prefixed and labelled.
//
// # What each party learns
//
// The server learns the roster's public keys, which clients took part in
// each round (U1…U5), and Σ_{u∈U3} x_u mod 2^64 — only if |U5| ≥ t; if any
// round ends with fewer than t clients the session aborts with
// [ErrTooFewSurvivors] and there is no partial result. It learns nothing
// else about any single x_u: every y_u it sees is masked by PRG(b_u), and
// for each u it can rebuild either b_u (u survived) or s_sk_u (u dropped),
// never both. A client learns the other clients' public keys, the sets U1,
// U2 and U3, and nothing about any input.
//
// Dropouts: up to n − t clients may vanish at any round, including after
// sending their masked input (their input is then in the sum: the server
// rebuilds their b from the others). The server ends a round when every
// remaining client has answered, at [Server.EndRound] (the caller's
// deadline), or at [Server.Drop] (a stream failed).
//
// # Threat model
//
// Semi-honest clients and server, as in the paper's honest-but-curious
// setting, plus two defences from its active version: a server cannot
// substitute keys (adverts are signed with the members' identity keys), and
// a server that tells different clients different survivor sets cannot get
// t consistency signatures on two sets, because t must be a strict majority
// (t > n/2, checked by Config) and an honest client signs once. So the
// server never holds both the self-mask share and the mask-key share of one
// client from t clients: an honest client refuses an UnmaskRequest naming a
// client both survivor and dropped, or any set other than the one it signed
// ([ErrInconsistent]). Collusions of the server with clients, and malicious
// clients that send wrong shares or out-of-range inputs (a bad share makes
// the result wrong, never a leak; Prio3 covers input validity), are out of
// scope. Policy (not this package) sets the minimum participant count: with
// two clients a sum reveals the other's input. t is also the fewest inputs a
// revealed sum covers, and every client enforces it on its own (no shares,
// masked input, consistency signature or unmasking share once fewer than t
// remain), so a caller whose server is also a client sets t above the
// majority where needed: xnode uses max(⌊n/2⌋+1, 3), so that a querier that
// subtracts its own input never holds a single peer's.
//
// # Encoding values
//
// Elements are integers mod 2^64. A decimal column with a declared scale k
// travels as round(value · 10^k); a negative value as its two's complement
// (uint64(int64(v))), read back with [Signed]. The sum is exact when every
// one of the n inputs has magnitude at most [InputBound](n) = (2^63−1)/n
// (unsigned counts: (2^64−1)/n). For example with scale 2 (cents) and 100
// institutions each total may reach ±9.2·10^14 currency units.
//
// # Resources
//
// Vectors of up to [MaxVectorLen] elements travel in MaskedInput chunks of
// [ChunkLen] elements (512 KiB), well below protocol.MaxMessageSize. A
// client holds its vector and does |U2| mask expansions; the server holds the
// running sum plus at most one partial vector per client whose chunks are
// still arriving, and does |U3| + |U2∖U3|·|U3| expansions. Client traffic is
// the masked vector plus O(n) small messages (about 1.00× the plaintext
// vector for 10 clients × 100,000 elements; see BenchmarkAggregate).
package secagg
