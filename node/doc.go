// Package node is the xnode daemon: a thin composition root over small
// services.
//
//	config      node/config      the data dir's config.toml and API token
//	identity    node/identity    the node's Ed25519 key (its libp2p peer ID)
//	membership  node/membership  consortium certificate and revocations
//	host        node/p2p         libp2p with membership-gated connections
//	store       node/store       the one bbolt file
//	datasets    node/datasets    imports and immutable versions
//	queries     node/queries     joint queries: proposals, approvals, protocol runs
//	policy      node/policy      policy.toml and daily budgets
//	audit       node/audit       the hash-chained, signed audit log
//	plugins     node/registry    installed, pinned query plugins
//	api         node/api         the local HTTP API the CLI uses
//
// Init creates a data dir; Open starts every service of a node from one, and
// Node implements api.Backend on top of them.
package node
