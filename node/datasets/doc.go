// Package datasets imports an institution's client lists into the store and
// reads them back for the privacy protocols.
//
// An import ([Service.Import]) reads CSV (header row, RFC 4180 quoting,
// CRLF, UTF-8 with or without a byte-order mark, or GBK) or JSON Lines,
// picks the identifier column(s), normalises every identifier with a kind's
// normaliser ([Normalise]: cn_id, phone, email, raw) and stores it
// namespaced by its kind ([Key]: "cn_id:110101199003071234"). The
// namespaced string is what the protocols hash, so identifiers of different
// kinds never collide; the plain normalised value is kept for showing
// results to the querier's analyst. Value columns are typed (integer,
// decimal with a fixed scale stored as a scaled int64, category), declared
// or inferred; label columns are text.
//
// Rows with a problem are reported with their line number and reason;
// strict mode refuses the file at the first one. A row whose normalised
// identifier was already seen is a duplicate: the first is kept.
//
// Every import creates a new immutable version (1, 2, 3, …) of the named
// dataset, all or nothing: rows are staged in chunked transactions and the
// version becomes visible in one final transaction (see package store), so
// a crash mid-import leaves no partial version and a 10M-row file is read
// with bounded memory.
//
// A [View] reads one version: its identifiers in batches in a stable order
// ([IDReader.Next], what the PSI protocols consume), a row by position or
// by identifier, and all rows with selected columns ([View.Rows]).
package datasets
