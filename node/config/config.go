// Package config reads and writes a node's data directory settings: the
// config file (config.toml), the local API token, and the defaults a fresh
// `xnode init` writes.
//
// Layout of a data directory:
//
//	config.toml        this package: name, listen and API addresses, peers, PSI defaults
//	api.token          this package: bearer token of the local API (mode 0600)
//	identity.key       node/identity: the node's Ed25519 key (mode 0600)
//	store.db           node/store: the bbolt store
//	membership/…       node/membership: certificate, consortium file, revocations
//	node.pid           the daemon's pid while it runs
package config

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/BurntSushi/toml"

	"xnode/crypto"
)

// File names inside a data directory.
const (
	FileName  = "config.toml"
	TokenFile = "api.token"
	StoreFile = "store.db"
	PIDFile   = "node.pid"
)

// Default addresses of a fresh node.
const (
	DefaultP2PPort = 7400
	DefaultAPIAddr = "127.0.0.1:7401"
)

// ErrNoConfig is returned by Load for a directory without config.toml.
var ErrNoConfig = errors.New("no xnode config in this directory")

// Config is the content of config.toml.
type Config struct {
	// Name is the node's display name inside the consortium.
	Name string `toml:"name"`
	// Listen are the libp2p listen multiaddrs.
	Listen []string `toml:"listen"`
	// API is the host:port of the local HTTP API; loopback by default.
	API string `toml:"api"`
	// Peers are the consortium members this node dials.
	Peers []Peer `toml:"peers"`
	// PSI holds defaults of the PSI protocols.
	PSI PSI `toml:"psi"`
	// LogLevel is debug, info, warn or error.
	LogLevel string `toml:"log_level"`
}

// Peer is a statically configured consortium member.
type Peer struct {
	Name string `toml:"name"`
	// Addr is a multiaddr ending in /p2p/<peer ID>.
	Addr string `toml:"addr"`
}

// PSI holds PSI defaults.
type PSI struct {
	// Suite is the ECDH-PSI crypto suite.
	Suite string `toml:"suite"`
	// TimeoutSeconds bounds one protocol session with one peer.
	TimeoutSeconds int `toml:"timeout_seconds"`
	// OPRFEpochDays is how long this node keeps one labeled-PSI key epoch
	// per risk list before it rotates the key (old encodings are then
	// refused); 0 means the default of 30 days.
	OPRFEpochDays int `toml:"oprf_epoch_days"`
}

// Default returns the settings of a fresh node called name.
func Default(name string) Config {
	return Config{
		Name: name,
		Listen: []string{
			fmt.Sprintf("/ip4/0.0.0.0/tcp/%d", DefaultP2PPort),
			fmt.Sprintf("/ip4/0.0.0.0/udp/%d/quic-v1", DefaultP2PPort),
		},
		API:      DefaultAPIAddr,
		PSI:      PSI{Suite: crypto.DefaultSuite, TimeoutSeconds: 600},
		LogLevel: "info",
	}
}

// Validate checks the settings a node needs to start.
func (c *Config) Validate() error {
	var problems []string
	if strings.TrimSpace(c.Name) == "" {
		problems = append(problems, "name is empty")
	}
	if len(c.Listen) == 0 {
		problems = append(problems, "listen has no address")
	}
	if c.API == "" {
		problems = append(problems, "api address is empty")
	}
	seen := map[string]bool{}
	for i, p := range c.Peers {
		if p.Name == "" || p.Addr == "" {
			problems = append(problems, fmt.Sprintf("peers[%d] needs a name and an addr", i))
		}
		if seen[p.Name] {
			problems = append(problems, fmt.Sprintf("peer name %q appears twice", p.Name))
		}
		seen[p.Name] = true
	}
	if c.PSI.TimeoutSeconds < 0 {
		problems = append(problems, "psi.timeout_seconds is negative")
	}
	if c.PSI.OPRFEpochDays < 0 {
		problems = append(problems, "psi.oprf_epoch_days is negative")
	}
	if len(problems) > 0 {
		return fmt.Errorf("invalid %s: %s", FileName, strings.Join(problems, "; "))
	}
	return nil
}

// Load reads DIR/config.toml. Unknown keys are an error, so a typo does not
// silently fall back to a default.
func Load(dir string) (Config, error) {
	path := filepath.Join(dir, FileName)
	var c Config
	md, err := toml.DecodeFile(path, &c)
	if errors.Is(err, os.ErrNotExist) {
		return c, fmt.Errorf("%w: %s is missing; create the node with `xnode init --dir %s`", ErrNoConfig, path, dir)
	}
	if err != nil {
		return c, fmt.Errorf("failed to read %s: %w", path, err)
	}
	if undec := md.Undecoded(); len(undec) > 0 {
		keys := make([]string, len(undec))
		for i, k := range undec {
			keys[i] = k.String()
		}
		return c, fmt.Errorf("failed to read %s: unknown keys %s", path, strings.Join(keys, ", "))
	}
	if c.PSI.TimeoutSeconds == 0 {
		c.PSI.TimeoutSeconds = Default("").PSI.TimeoutSeconds
	}
	if err := c.Validate(); err != nil {
		return c, fmt.Errorf("%s: %w", path, err)
	}
	return c, nil
}

// Save writes DIR/config.toml atomically.
func Save(dir string, c Config) error {
	var buf bytes.Buffer
	buf.WriteString("# xnode node configuration. See docs/CONFIG.md.\n")
	if err := toml.NewEncoder(&buf).Encode(c); err != nil {
		return fmt.Errorf("failed to encode config: %w", err)
	}
	return WriteFileAtomic(filepath.Join(dir, FileName), buf.Bytes(), 0o644)
}

// NewToken creates DIR/api.token with a fresh random bearer token (mode
// 0600) and returns it.
func NewToken(dir string) (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	tok := hex.EncodeToString(b)
	if err := WriteFileAtomic(filepath.Join(dir, TokenFile), []byte(tok+"\n"), 0o600); err != nil {
		return "", err
	}
	return tok, nil
}

// Token reads DIR/api.token.
func Token(dir string) (string, error) {
	b, err := os.ReadFile(filepath.Join(dir, TokenFile))
	if err != nil {
		return "", fmt.Errorf("failed to read the API token: %w (is %s an xnode data dir? run `xnode init --dir %s`)", err, dir, dir)
	}
	return strings.TrimSpace(string(b)), nil
}

// WriteFileAtomic writes data to path through a temporary file and a rename,
// fsyncing the file, so readers see the old or the new content, never half.
func WriteFileAtomic(path string, data []byte, perm os.FileMode) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return fmt.Errorf("failed to write %s: %w", path, err)
	}
	tmp := f.Name()
	defer os.Remove(tmp)
	if err := f.Chmod(perm); err != nil {
		f.Close()
		return fmt.Errorf("failed to write %s: %w", path, err)
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return fmt.Errorf("failed to write %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("failed to write %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("failed to write %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("failed to write %s: %w", path, err)
	}
	return nil
}
