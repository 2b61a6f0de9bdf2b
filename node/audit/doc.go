// Package audit keeps the node's tamper-evident audit chain: every proposal,
// approval, denial, run, result, import, policy change and membership event,
// in the order the node saw it.
//
// Each [Entry] is stored in the store's Audit bucket under its sequence
// number (8 bytes, big-endian; the first entry is 1). An entry carries the
// hash of the entry before it and its own hash,
//
//	hash = SHA-256( "xnode/audit/entry/v1" ‖ field ‖ field ‖ … )
//
// where every field — seq, time (Unix nanoseconds), kind, query id, actor,
// signer, details, prev — is written as an 8-byte big-endian length followed
// by its bytes (see [Entry.ComputeHash]). The details are canonical JSON
// (sorted keys, no insignificant space, no HTML escaping), so re-encoding
// them cannot change the hash. The node signs the hash with its Ed25519 key.
//
// A signed head record (key 0x00 in the same bucket) names the last
// sequence number and hash, so cutting entries off the end is detected as
// long as the head is not also replaced by an older signed head.
// Truncation to an earlier, genuine state cannot be detected from one node's
// file alone: compare heads across participants, or keep exports elsewhere.
//
// [Log.Verify] walks the chain and names the first bad entry and what is
// wrong with it (bad hash, broken link, bad signature, gap in the
// sequence, an entry stored under the wrong key, a head that disagrees with
// the chain). [Log.Export] writes the chain as JSON Lines; [ReadJSONL] and
// [VerifyEntries] check such an export elsewhere against the node's public
// key.
//
// What goes into Details: what ran (plugin, version, digest, parameters),
// datasets and versions, counts, and what was revealed to whom as a
// commitment ([CommitResult]) — never raw identifiers, and never a plain hash
// of one: identifiers are low-entropy, so an unkeyed hash of a short result
// is as good as the identifier itself.
package audit
