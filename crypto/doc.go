// Package crypto holds xnode's cryptographic suites and primitives.
//
// Every privacy protocol in xnode works over a named suite taken from a registry
// ([Lookup], [Names]): a prime-order group with an RFC 9380 hash-to-group,
// fresh secret scalars drawn from an injected io.Reader, validation of every
// element received from a peer, and fixed-size encodings so that a batch of n
// elements travels as n × [Suite.ElementSize] bytes in one slice.
//
// The suites wrap github.com/cloudflare/circl (and, for the Elligator 2 map,
// filippo.io/edwards25519's field and point arithmetic); nothing here
// re-implements a primitive that circl or the standard library provides.
//
//	ristretto255-sha512  circl group.Ristretto255, hash_to_ristretto255 with
//	                     expand_message_xmd(SHA-512) (RFC 9496 §4.3.4, RFC 9380 §5.3.1)
//	p256-sha256          circl group.P256, P256_XMD:SHA-256_SSWU_RO_ (RFC 9380 §8.2),
//	                     SEC 1 compressed encoding (33 bytes)
//	x25519-elligator2    (default) curve25519_XMD:SHA-512_ELL2_RO_ (RFC 9380 §6.7.1,
//	                     Appendix G.2) on filippo.io/edwards25519's field and point
//	                     arithmetic, then circl dh/x25519 (RFC 7748) with clamped
//	                     scalars; 32-byte little-endian Montgomery u-coordinates.
//	                     Not a prime-order group encoding: see [X25519Elligator2]
//	                     for why ECDH-PSI is still sound on it.
//
// Secrets never leave a [Key]: a key blinds and re-blinds encoded elements,
// prints as a redacted type prefix, and has no accessor for its scalar.
//
// This package imports nothing else of xnode's.
package crypto
