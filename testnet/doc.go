// Package testnet runs a local consortium on loopback: the harness behind
// `xnode testnet up|demo|down` and the project's own end-to-end test.
//
// [Up] lays a testnet out in one directory and starts it:
//
//	DIR/testnet.json          State: nodes, peer IDs, addresses, pids, truth path
//	DIR/consortium/           the consortium root key (membership.Init)
//	DIR/node1/ … DIR/nodeN/   node data dirs (node.Init), each admitted, each
//	                          configured with every other node as a peer;
//	                          DIR/nodeK/node.log is that node's output
//	DIR/data/truth.json       ground truth from testnet/synth
//	DIR/data/nodeK/*.csv      synthetic clients and risklist of nodeK
//
// Each node runs as its own process (the xnode binary re-executed with
// `run --dir DIR/nodeK`) in its own process group, so [Down] stops a node and
// anything it started with one signal, and a Ctrl-C in the terminal that ran
// `up` does not reach the nodes.
//
// [Demo] runs every built-in query against a running testnet and compares
// each answer with the ground truth that testnet/synth computed from the
// plaintext with plain set arithmetic — never with the protocol code. A
// [Check] turns a query kind into requests and a comparison; new query kinds
// (risk-check, segment-stats) are new entries of [Checks].
//
// Policy: every node gets a policy.toml ([Policy]) that approves the
// built-in plugins between members on the synthetic datasets, and the
// built-ins are installed (pinned to the running binary) at every `up`.
package testnet
