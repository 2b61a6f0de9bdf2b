// Module xnode is a consortium node for private set intersection and secure
// aggregation between financial institutions. This file walks a newcomer
// through the layout; ../shared/DESIGN.md has the architecture.
//
// Dependencies point one way: cmd → node → {protocol, plugins} → crypto.
//
//	cmd/xnode/       the one binary: CLI (cobra) and daemon. Each subcommand is a
//	                 runX(ctx, opts, …) function; main maps errors to exit codes.
//	node/            the daemon, a thin composition root (node.go) over small services:
//	  config/        the data dir's config.toml and API token
//	  identity/      the node's Ed25519 key, which is its libp2p peer ID
//	  membership/    consortium root key, membership certificates, revocation lists
//	  p2p/           the libp2p host: membership-gated connections, framed streams
//	  store/         the one package that opens bbolt
//	  datasets/      CSV/JSONL import, identifier normalisers, immutable versions
//	  queries/       the query lifecycle: signed proposals, approvals, protocol runs
//	  policy/        policy.toml: who may run which plugin on which dataset; daily budgets
//	  audit/         the hash-chained, signed audit log
//	  registry/      installed query plugins, pinned by SHA-256
//	  api/           the local HTTP API (server, typed client, OpenAPI)
//	plugins/         the query-plugin contract (Go interface over go-plugin gRPC),
//	                 the built-ins, the conformance suite, a Node.js example
//	protocol/        privacy protocols as sans-I/O state machines (protocol.Machine)
//	  psi/ecdh/      two-party ECDH-PSI: intersection, intersection-both, cardinality
//	  psi/oprf/      unbalanced labeled PSI over an RFC 9497 VOPRF (risk lists)
//	  secagg/        secure aggregation with dropouts (Bonawitz et al. 2017)
//	  memconn/       an in-memory protocol.Conn pair for tests and benchmarks
//	crypto/          suites: x25519-elligator2 (default), ristretto255, P-256; validation
//	testnet/         a local consortium with synthetic data and ground truth
//	scripts/         code generation and side-by-side benchmarks
//
// The protocols never import node or libp2p: a node adapts a libp2p stream to
// protocol.Conn and runs a protocol.Machine over it, so every protocol test
// runs in memory.
package xnode
