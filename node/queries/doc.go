// Package queries runs joint queries through plugins, policy and approvals,
// and records every step in the audit chain.
//
// Lifecycle, at the querier (the analyst's node):
//
//  1. Submit: the installed plugin (pinned by digest) checks the parameters
//     and plans which columns each side reads; the querier's Prepare counts
//     its input items (policy's minimum set size needs the number).
//  2. Propose: a Proposal — query id, plugin name, version and digest,
//     parameters, protocol, suite, datasets, the querier's set size, expiry —
//     signed with the querier's node key goes to each participant over
//     /xnode/query/1.0.0.
//  3. Each participant verifies the signature against the querier's peer ID,
//     checks that its own installed copy of the plugin has the same digest,
//     evaluates its policy (peers, datasets, minimum set size, daily rate)
//     and answers approved, awaiting-approval (a person decides with
//     `xnode query approve|deny`, and the participant sends a Notice back) or
//     denied with the rule's name.
//  4. Run: once every participant approved, the querier opens the protocol
//     stream (/xnode/psi-ecdh/1.0.0) to each with a RunRequest; each side
//     prepares its input through its own plugin, the protocol runs, and the
//     querier's plugin finalizes the output into a result table.
//  5. Both sides audit the run and what it revealed to whom; the querier
//     stores the result with a salted commitment to it in its audit chain.
//
// Statuses: proposed, awaiting-approval, running, done, failed, denied,
// expired (approvals that did not come before the proposal's expiry). A
// participant's record of the same query has its own statuses: approved,
// awaiting-approval, denied, running, done, failed, expired.
//
// The session id both parties feed into the protocol is
// SHA-256("xnode-session-v1" ‖ query id ‖ querier peer ID ‖ responder peer ID),
// so a protocol session is bound to one query and one pair of nodes.
package queries
