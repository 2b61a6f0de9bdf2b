// Package ecdh is two-party ECDH private set intersection (Meadows 1986; the
// protocol of OpenMined PSI and SecretFlow's ECDH-PSI) as a sans-I/O state
// machine. A [Querier] holding X and a [Responder] holding Y each draw a fresh
// secret scalar (a and b) per session and hash items to the group with
// H = hash-to-group of the session's suite, domain-separated by
// crypto.DST("psi-ecdh", suite, session).
//
// Message flow (stream protocol /xnode/psi-ecdh/1.0.0, one Envelope per
// frame, B elements per batch):
//
//	Querier (X, secret a)                        Responder (Y, secret b)
//	  Hello{suite, mode, session, |X|, B} ───────▶  checks suite/mode/session, caps
//	                                      ◀─────── Accept{|Y|}
//	  Elements a·H(x) in batches        ───────▶  re-blinds each: b·a·H(x)
//	                                      ◀─────── Digests D(b·a·H(x)):
//	                                                 per batch, in order (intersection modes;
//	                                                 at most Window batches outstanding), or
//	                                                 all at the end, sorted (cardinality)
//	                                      ◀─────── Elements b·H(y) in batches, in a secret
//	                                                 random order π
//	  D(a·b·H(y)), looks each up among the D(b·a·H(x))
//	  Matches{positions in π order}     ───────▶  (intersection-both only) maps back through π
//
// D is SHA-256 over a compare prefix (suite and session) and the encoded
// element, truncated to [DigestSize] = 16 bytes. Two different elements
// collide with probability 2^-128 per pair, so over all |X|·|Y| pairs a false
// match has probability at most |X|·|Y|·2^-128 (below 2^-81 for 10M × 10M).
//
// What each party learns, besides the other side's set size (|Y| to the
// querier, |X| to the responder), which every mode reveals:
//
//   - Intersection: the querier learns which of its items are in Y (and so
//     |X∩Y|); the responder learns nothing more.
//   - IntersectionBoth: as Intersection, and the responder learns which of
//     its items are in X.
//   - Cardinality: the querier learns only |set(X) ∩ set(Y)|: the digests it
//     gets back are sorted, which is a random order independent of X's order,
//     so it cannot tell which of its items matched. The responder learns
//     nothing more.
//
// Under DDH in the suite's group, elements a·H(x), b·H(y) and b·a·H(x) are
// indistinguishable from random to a party that lacks the other scalar, and
// nothing unkeyed about an identifier ever crosses the wire. The protocol is
// secure against semi-honest parties; a malicious querier probing with tiny
// sets is bounded by node policy, not here.
//
// Duplicates: every input position is processed. The querier's Matches list
// every position of X whose item is in Y (duplicates included), Cardinality
// counts distinct shared items, and in IntersectionBoth the responder gets
// every position of Y whose item is in X.
//
// Resources: the querier keeps one 20-byte entry per item of X (digest and
// position); the responder keeps |Y| encoded elements and a permutation, and
// in cardinality mode one digest per item of X. Nothing else grows with the
// set sizes: inputs are read from a [Source] batch by batch, hashing and
// scalar multiplications fan out over Config.Workers cores within a call,
// every received message is size-capped and every element is validated
// (canonical encoding, not the identity).
package ecdh
