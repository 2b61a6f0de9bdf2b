package testnet

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"xnode/node/config"
	"xnode/testnet/synth"
)

// StateFile is the name of the state file in a testnet directory.
const StateFile = "testnet.json"

// StateVersion is the version of the testnet.json layout.
const StateVersion = 1

// Node statuses in State.
const (
	StatusRunning = "running"
	StatusStopped = "stopped"
)

// Dataset names a testnet imports into every node.
const (
	DatasetClients  = "clients"
	DatasetRiskList = "risklist"
)

// PolicyNote says what a testnet's policy is, in words.
const PolicyNote = "every node's policy.toml approves the built-in plugins for every member on clients and risklist, without a person"

// Policy is the policy.toml every testnet node gets.
const Policy = `# xnode testnet policy: every consortium member may run the built-in
# plugins on the synthetic datasets, approved without a person. See
# docs/POLICY.md; a real node names its peers and pins plugin digests.
version = 1

[[rule]]
name = "testnet-members"
description = "built-in queries between testnet members"
plugin = "*"
datasets = ["clients", "risklist"]
peers = ["*"]
approval = "auto"
min_set_size = 10
`

// ErrNoTestnet is returned (wrapped) by Load for a directory without
// testnet.json.
var ErrNoTestnet = errors.New("no testnet in this directory")

// State is the content of DIR/testnet.json.
type State struct {
	Version    int         `json:"version"`
	Dir        string      `json:"dir"`
	Consortium Consortium  `json:"consortium"`
	Nodes      []NodeState `json:"nodes"`
	Data       *DataState  `json:"data,omitempty"` // nil with --no-data
	Policy     string      `json:"policy"`
	Started    time.Time   `json:"started,omitzero"`
	Stopped    time.Time   `json:"stopped,omitzero"`
}

// Consortium is the testnet's consortium root.
type Consortium struct {
	Name string `json:"name"`
	ID   string `json:"id"`
	Dir  string `json:"dir"`
}

// NodeState is one node of a testnet.
type NodeState struct {
	Name    string `json:"name"`
	Dir     string `json:"dir"`
	PeerID  string `json:"peer_id"`
	P2PPort int    `json:"p2p_port"`
	P2PAddr string `json:"p2p_addr"` // /ip4/127.0.0.1/tcp/PORT/p2p/PEER_ID
	API     string `json:"api"`      // 127.0.0.1:PORT
	Log     string `json:"log"`
	Pid     int    `json:"pid,omitempty"` // 0 when stopped
	Status  string `json:"status"`
}

// DataState describes the synthetic data of a testnet.
type DataState struct {
	Dir      string       `json:"dir"`
	Truth    string       `json:"truth"`
	Params   synth.Params `json:"params"`
	Imported bool         `json:"imported"`
}

// Node returns the node named name.
func (s *State) Node(name string) (*NodeState, error) {
	for i := range s.Nodes {
		if s.Nodes[i].Name == name {
			return &s.Nodes[i], nil
		}
	}
	return nil, fmt.Errorf("the testnet in %s has no node %q", s.Dir, name)
}

// Load reads DIR/testnet.json.
func Load(dir string) (*State, error) {
	path := filepath.Join(dir, StateFile)
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w: %s is missing; start one with `xnode testnet up --dir %s`", ErrNoTestnet, path, dir)
	}
	if err != nil {
		return nil, fmt.Errorf("failed to read %s: %w", path, err)
	}
	s, err := DecodeState(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return s, nil
}

// DecodeState parses a testnet.json document.
func DecodeState(data []byte) (*State, error) {
	var s State
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&s); err != nil {
		return nil, fmt.Errorf("failed to decode testnet state: %w", err)
	}
	if s.Version != StateVersion {
		return nil, fmt.Errorf("testnet state version %d, this build reads version %d; stop the nodes by their pids and remove the directory", s.Version, StateVersion)
	}
	return &s, nil
}

// Save writes s to s.Dir/testnet.json atomically.
func (s *State) Save() error {
	data, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return fmt.Errorf("failed to encode testnet state: %w", err)
	}
	return config.WriteFileAtomic(filepath.Join(s.Dir, StateFile), append(data, '\n'), 0o644)
}
