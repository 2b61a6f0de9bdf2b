// Package store is the node's one embedded database: a single bbolt file per
// node, owned by this package alone. Nothing else in xnode imports bbolt.
//
// Open takes the file lock with a one-second timeout (a second xnode process
// on the same data dir gets a clear [ErrLocked] error), creates every bucket,
// checks the schema version kept in the meta bucket and runs migrations. All
// integer keys are big-endian ([EncodeUint64]) so they sort numerically, and
// every byte slice handed to a caller is a copy: nothing returned here points
// into bbolt's memory map.
//
// Two kinds of API sit on top:
//
//   - A small generic key/value API on the named buckets used by other
//     services (queries, approvals, audit, oprf, budgets): [Store.Get],
//     [Store.Put], [Store.Delete], [Store.ForEach], [Store.NextSequence], and
//     [Store.Update] / [Store.View] for several operations in one
//     transaction. Values are opaque bytes; the caller chooses the encoding.
//
//   - Dataset versions. An import writes its rows through a
//     [StagedVersion] in chunked transactions (so a 10M-row import never
//     builds one giant transaction), into a row set that no reader can see.
//     [StagedVersion.Commit] makes it visible as the dataset's next version
//     in one small final transaction. A crash before that leaves only a
//     staged row set, which the next Open deletes. Versions are immutable;
//     rows are read back in short read transactions ([Store.ReadRows]) so a
//     long PSI run never pins the database.
//
// Layout (bucket → keys):
//
//	meta      "schema_version" → uint64
//	datasets  <name> (nested; its sequence numbers the versions) → version → header
//	rows      <rowset id> (nested) → "p": position → key+value, "k": key → position
//	staged    <rowset id> → dataset name (row sets not yet committed)
//	queries, approvals, audit, oprf, budgets   generic, see [Bucket]
//
// Each call is one bounded transaction, so the store's methods take no
// context: callers check cancellation between calls.
package store
