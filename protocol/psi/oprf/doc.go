// Package oprf is unbalanced labeled private set intersection over an
// RFC 9497 verifiable OPRF (VOPRF mode, suite ristretto255-SHA512, circl's
// oprf package), as sans-I/O state machines.
//
// A responder (say, the holder of a risk list Y with labels) draws a VOPRF
// key k per key epoch ([NewEpoch]); its public key pk = k·G is the epoch's
// [Commitment], published to the consortium. Offline it evaluates every item
// y once, F(y) = RFC 9497 Finalize(y, k·H(y)) (circl FullEvaluate, fanned out
// over the cores), and builds an encoding ([Epoch.Encode]):
//
//	PRK    = HKDF-Extract(SHA-512, salt = "xnode-v1:psi-oprf:ristretto255-SHA512:" ‖ epoch, F(y))
//	tag    = HKDF-Expand(PRK, "tag", 16)
//	key    = HKDF-Expand(PRK, "label-key", 32)      AES-256-GCM key of the labels
//	nonce  = HMAC-SHA-256(HKDF-Expand(PRK, "label-nonce", 32), AD ‖ labels)[:12]   (synthetic, as SIV)
//	entry  = tag ‖ nonce ‖ AES-256-GCM(key, nonce, labels, AD = "…:labels:" ‖ epoch ‖ tag)
//
// The labeled form ([Encoding]) holds the entries sorted by tag; the
// membership form ([MembershipSet]) only a Golomb-coded set of truncated
// tags. Only a party that knows F(x) finds x's entry and opens its labels, and
// F(x) needs the responder's key. The synthetic nonce makes encoding
// deterministic, so a cached encoding patched with deltas ([Epoch.Update],
// [Set.Apply]) equals a full rebuild bit for bit, and two different labels
// of one item never share a nonce.
//
// Message flow (stream protocol /xnode/psi-oprf/1.0.0, one Envelope per frame):
//
//	Querier (X, cached encoding or none)            Responder (epoch key k, encoding, deltas)
//	  Hello{version, suite, form, cached epoch,
//	        cached pk, cached version, |X|, B} ───▶  checks version, suite, form, |X|, B
//	                                          ◀───  Refuse{reason} (and ends), or
//	                                          ◀───  Sync{epoch, pk, version, kind, objects}
//	                                          ◀───  Chunk… (kind full: the encoding;
//	                                                 deltas: each delta since the cached version;
//	                                                 current: none)
//	  checks pk against its pin, rebuilds or patches the encoding, refuses one
//	  whose epoch, pk or version is not the Sync's
//	  Query{r·H(x) for B identifiers}         ───▶  Budget(B) — an error: Refuse{budget}, end
//	  (at most Window outstanding)            ◀───  Evaluated{k·r·H(x), one batch DLEQ proof
//	                                                 per 256 elements}
//	  verifies every proof against pk, unblinds and finalizes F(x), derives
//	  tag(x), looks it up, opens the labels of hits
//
// What each party learns:
//
//   - The querier: for each of its identifiers, whether it is in Y and (labeled
//     form) its labels; |Y| and, across versions, how many entries a delta
//     added and removed. Without F(y) for y ∉ X, entries of other items are
//     16 random-looking bytes and AEAD ciphertexts: tags and keys come from
//     F(y) through HKDF, and F is a PRF under the One-More-Gap-DH assumption
//     (RFC 9497 §7). Each evaluated identifier costs budget, which bounds
//     dictionary probing of the low-entropy identifier space.
//   - The responder: |X| (how many identifiers were evaluated), the form asked
//     for, and the querier's cached epoch and version. Blinded elements r·H(x)
//     are uniformly random group elements independent of x.
//   - The wire carries only the commitment, encodings (tags and ciphertexts),
//     blinded and evaluated group elements and proofs: no identifier and no
//     unkeyed hash of one.
//
// Why a DLEQ proof against a committed key: in plain OPRF mode a responder
// could evaluate one querier under a key k' of its own and keep a matching
// encoding for that querier alone — singling it out (for instance to learn
// later, from an encoding it hands over, which outputs that querier holds,
// or to show it different list contents than everyone else). In VOPRF mode
// every evaluation carries a batch DLEQ proof that log_G(pk) = log_{r·H(x)}
// (k·r·H(x)); the querier verifies it against the pk of the Sync, which it
// pins to the epoch's commitment published to the whole consortium (and
// checks that the encoding it uses was built under that same epoch and pk).
// So all queriers of an epoch are evaluated under one key.
//
// False positives. Labeled form: a non-member x is reported only if its
// 16-byte tag equals one of |Y| tags: at most |Y|·2^-128 per lookup (and its
// labels then still fail to open). Membership form: the set is split into B
// buckets (B = ⌈expected items / 2^9⌉, fixed per epoch); a tag maps to bucket
// j (from its first 8 bytes) and a value v uniform in [0, W), W =
// 2^(FPRBits+9) (from its last 8). A bucket of m items holds at most m of the
// W values, so a non-member hits with probability m/W, on average
//
//	ε = |Y| / (B·W) = 2^-FPRBits at the expected size (default FPRBits = 44: ε ≈ 5.7e-14),
//
// and a batch of 10,000 applicants sees a false positive with probability
// at most 10⁴·ε ≈ 5.7e-10 ≤ 1e-9. ε grows in proportion to |Y| beyond the
// expected size: rotate the epoch then ([MembershipSet.FalsePositiveRate]
// reports it). Values are coded as sorted gaps, Golomb-Rice with parameter
// k ≈ log2(W/m): gaps are close to geometric with mean W/m = 2^FPRBits, so a
// gap costs k low bits, plus a unary quotient q with P(q ≥ i) ≈ e^-i, i.e.
// 1 + 1/(e-1) ≈ 1.58 bits: about log2(1/ε) + 1.58 ≈ 45.6 bits = 5.7 bytes per
// item (psi.js's GCS needs 41.4 bits at its own ε; ours is set for 1e-9 per
// batch of 10k), plus about 5 bytes per bucket of 512 items. The labeled form
// costs 16 + 12 + 16 bytes plus the labels per item.
//
// Deltas: a delta lists the tags removed and the entries added between two
// consecutive versions of an epoch (a changed item is both). A querier with
// an older cached version of the current epoch gets the deltas since it
// (unless they outweigh the encoding); a querier cached on another epoch or
// key gets the full encoding: a key rotation invalidates every old encoding.
//
// Serialisation: encodings and deltas stream as a header chunk and body
// chunks of whole records, each at most the chosen chunk size (≤
// protocol.MaxMessageSize); see serial.go for the layout. The node stores
// the epoch ([Epoch.MarshalBinary], a secret), the encoding chunks and the
// deltas. Every received element is decoded canonically and refused if it is
// the identity; every message, chunk, count and length is capped and
// validated; the responder evaluates exactly the identifiers the querier
// declared, batch by batch, in order.
//
// Randomness: blinds come from QuerierConfig.Rand. circl's VOPRF server
// draws the DLEQ proof's nonce from crypto/rand itself.
package oprf
