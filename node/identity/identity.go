// Package identity holds a node's persistent Ed25519 key, which is also its
// libp2p peer ID.
//
// The key lives in one PEM file (PKCS #8) named [KeyFile] inside the node's
// data directory. It is created with mode 0600, and [Load] refuses a key file
// that group or others may read. [ReadKeyFile] and [WriteKeyFile] apply the
// same rules to any Ed25519 key file, such as a consortium's root key.
package identity

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
)

// KeyFile is the name of the node key file inside a data directory.
const KeyFile = "node.key"

const pemType = "PRIVATE KEY"

var (
	// ErrNoKey is returned by Load when the data directory has no key file.
	ErrNoKey = errors.New("no node key")
	// ErrKeyPermissions is returned for a key file that group or others may
	// access.
	ErrKeyPermissions = errors.New("key file is accessible by group or others")
	// ErrBadKey is returned for a key file that is not a PEM-encoded Ed25519
	// private key.
	ErrBadKey = errors.New("key file does not hold an Ed25519 private key")
)

// Identity is a node's signing key and the peer ID derived from it.
type Identity struct {
	key  ed25519.PrivateKey
	priv crypto.PrivKey
	id   peer.ID
}

// FromKey wraps an Ed25519 private key.
func FromKey(key ed25519.PrivateKey) (*Identity, error) {
	if len(key) != ed25519.PrivateKeySize {
		return nil, ErrBadKey
	}
	priv, err := crypto.UnmarshalEd25519PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("failed to convert node key: %w", err)
	}
	id, err := peer.IDFromPrivateKey(priv)
	if err != nil {
		return nil, fmt.Errorf("failed to derive peer ID: %w", err)
	}
	k := make(ed25519.PrivateKey, len(key))
	copy(k, key)
	return &Identity{key: k, priv: priv, id: id}, nil
}

// Generate makes a new identity from the randomness r (nil means
// crypto/rand). It writes nothing to disk.
func Generate(r io.Reader) (*Identity, error) {
	if r == nil {
		r = rand.Reader
	}
	_, key, err := ed25519.GenerateKey(r)
	if err != nil {
		return nil, fmt.Errorf("failed to generate node key: %w", err)
	}
	return FromKey(key)
}

// ID returns the node's libp2p peer ID.
func (i *Identity) ID() peer.ID { return i.id }

// PrivKey returns the key in libp2p's form, for the host.
func (i *Identity) PrivKey() crypto.PrivKey { return i.priv }

// PublicKey returns the Ed25519 public key.
func (i *Identity) PublicKey() ed25519.PublicKey {
	return i.key.Public().(ed25519.PublicKey)
}

// Sign signs msg with the node key.
func (i *Identity) Sign(msg []byte) []byte { return ed25519.Sign(i.key, msg) }

// Verify reports whether sig is p's Ed25519 signature of msg, with the
// public key p embeds (every xnode peer ID does).
func Verify(p peer.ID, msg, sig []byte) bool {
	pub, err := p.ExtractPublicKey()
	if err != nil {
		return false
	}
	raw, err := pub.Raw()
	if err != nil || len(raw) != ed25519.PublicKeySize {
		return false
	}
	return ed25519.Verify(raw, msg, sig)
}

// String names the identity by its peer ID; it never prints the key.
func (i *Identity) String() string { return "identity:" + i.id.String() }

// Load reads the node key from dir. It returns an error wrapping ErrNoKey if
// there is none, and one wrapping ErrKeyPermissions if the file is readable
// by group or others.
func Load(dir string) (*Identity, error) {
	key, err := ReadKeyFile(filepath.Join(dir, KeyFile))
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("%w in %s: run `xnode init` first", ErrNoKey, dir)
		}
		return nil, err
	}
	return FromKey(key)
}

// LoadOrCreate loads the node key from dir, or creates dir (mode 0700) and a
// new key (mode 0600) if there is no key yet.
func LoadOrCreate(dir string) (*Identity, error) {
	id, err := Load(dir)
	if err == nil || !errors.Is(err, ErrNoKey) {
		return id, err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("failed to create data dir: %w", err)
	}
	id, err = Generate(nil)
	if err != nil {
		return nil, err
	}
	path := filepath.Join(dir, KeyFile)
	if err := WriteKeyFile(path, id.key); err != nil {
		if errors.Is(err, fs.ErrExist) {
			// Another process created it first: use that one.
			return Load(dir)
		}
		return nil, err
	}
	return id, nil
}

// ReadKeyFile reads a PEM (PKCS #8) Ed25519 private key. It refuses a file
// that group or others may access, with an error that says how to fix it.
func ReadKeyFile(path string) (ed25519.PrivateKey, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("failed to open key file: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("failed to stat key file: %w", err)
	}
	if runtime.GOOS != "windows" && st.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("%w: %s has mode %04o; run `chmod 600 %s`",
			ErrKeyPermissions, path, st.Mode().Perm(), path)
	}
	data, err := io.ReadAll(io.LimitReader(f, 64<<10))
	if err != nil {
		return nil, fmt.Errorf("failed to read key file: %w", err)
	}
	block, _ := pem.Decode(data)
	if block == nil || block.Type != pemType {
		return nil, fmt.Errorf("%w: %s", ErrBadKey, path)
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrBadKey, path, err)
	}
	key, ok := k.(ed25519.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("%w: %s holds a %T", ErrBadKey, path, k)
	}
	return key, nil
}

// WriteKeyFile writes key to path as PEM (PKCS #8) with mode 0600. It never
// replaces an existing file: then it returns an error wrapping fs.ErrExist.
// The file appears whole or not at all.
func WriteKeyFile(path string, key ed25519.PrivateKey) error {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return fmt.Errorf("failed to encode key: %w", err)
	}
	data := pem.EncodeToMemory(&pem.Block{Type: pemType, Bytes: der})
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, ".key-*")
	if err != nil {
		return fmt.Errorf("failed to create key file: %w", err)
	}
	tmpName := tmp.Name()
	defer os.Remove(tmpName)
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return fmt.Errorf("failed to restrict key file: %w", err)
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fmt.Errorf("failed to write key file: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("failed to sync key file: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("failed to write key file: %w", err)
	}
	// Link fails if path exists, so a key is never overwritten.
	if err := os.Link(tmpName, path); err != nil {
		return fmt.Errorf("failed to install key file %s: %w", path, err)
	}
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		d.Close()
	}
	return nil
}
