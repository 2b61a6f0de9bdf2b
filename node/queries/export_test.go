package queries

// Internals the black-box tests of package queries_test build hostile peers
// with.
var (
	// SessionID is the ECDH-PSI session id of a query between two nodes.
	SessionID = sessionID
	// SumConfig is the secure-aggregation configuration of a query.
	SumConfig = sumConfig
	// ErrStopped is a query's error when this node stopped while it ran.
	ErrStopped = errStopped
)
