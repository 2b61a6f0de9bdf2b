package membership

import (
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"xnode/node/identity"
)

// File names in a consortium directory and a node's data directory.
const (
	RootKeyFile     = "root.key"
	ConsortiumFile  = "consortium.json"
	CertFile        = "membership.json"
	RevocationsFile = "revocations.json"
	SerialFile      = "serial"
	MembersDir      = "members"
)

// ClockSkew is how far before its issue time a certificate becomes valid,
// so that members whose clocks run a little behind accept it at once.
const ClockSkew = 5 * time.Minute

// Root is the consortium root: the private key and the consortium it makes.
type Root struct {
	Consortium *Consortium
	key        ed25519.PrivateKey
}

// NewRoot makes a new root key from randomness r (nil means crypto/rand).
// It writes nothing to disk.
func NewRoot(name string, r io.Reader) (*Root, error) {
	if r == nil {
		r = rand.Reader
	}
	pub, key, err := ed25519.GenerateKey(r)
	if err != nil {
		return nil, fmt.Errorf("failed to generate root key: %w", err)
	}
	c, err := NewConsortium(name, pub)
	if err != nil {
		return nil, err
	}
	return &Root{Consortium: c, key: key}, nil
}

// SignCert fills in c.ConsortiumID, normalises c.Roles and signs c. The
// caller sets every other field; times are truncated to whole seconds, UTC.
func (r *Root) SignCert(c *Cert) error {
	c.ConsortiumID = r.Consortium.ID
	c.Roles = NormalizeRoles(c.Roles)
	c.NotBefore = c.NotBefore.Truncate(time.Second).UTC()
	c.NotAfter = c.NotAfter.Truncate(time.Second).UTC()
	if err := c.validate(); err != nil {
		return err
	}
	c.Signature = ed25519.Sign(r.key, c.SigningBytes())
	return nil
}

// SignRevocations fills in rl.ConsortiumID, sorts rl.Revoked and signs rl.
func (r *Root) SignRevocations(rl *RevocationList) error {
	rl.ConsortiumID = r.Consortium.ID
	rl.Issued = rl.Issued.Truncate(time.Second).UTC()
	for i := range rl.Revoked {
		rl.Revoked[i].RevokedAt = rl.Revoked[i].RevokedAt.Truncate(time.Second).UTC()
	}
	slices.SortFunc(rl.Revoked, func(a, b Revocation) int {
		return strings.Compare(string(a.PeerID), string(b.PeerID))
	})
	if err := rl.validate(); err != nil {
		return err
	}
	rl.Signature = ed25519.Sign(r.key, rl.SigningBytes())
	return nil
}

// Init creates a consortium directory: a new root key (mode 0600), the
// public consortium file and an empty signed revocation list (version 1).
// It refuses a directory that already holds a root key.
func Init(cdir, name string) (*Consortium, error) {
	if err := os.MkdirAll(cdir, 0o700); err != nil {
		return nil, fmt.Errorf("failed to create consortium dir: %w", err)
	}
	root, err := NewRoot(name, nil)
	if err != nil {
		return nil, err
	}
	if err := identity.WriteKeyFile(filepath.Join(cdir, RootKeyFile), root.key); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return nil, fmt.Errorf("consortium dir %s already has a root key: use another dir", cdir)
		}
		return nil, err
	}
	if err := writeJSONFile(filepath.Join(cdir, ConsortiumFile), root.Consortium); err != nil {
		return nil, err
	}
	rl := &RevocationList{Version: 1, Issued: time.Now(), Revoked: []Revocation{}}
	if err := root.SignRevocations(rl); err != nil {
		return nil, err
	}
	if err := writeJSONFile(filepath.Join(cdir, RevocationsFile), rl); err != nil {
		return nil, err
	}
	return root.Consortium, nil
}

// OpenRoot loads the root key and consortium file of a consortium directory.
func OpenRoot(cdir string) (*Root, error) {
	key, err := identity.ReadKeyFile(filepath.Join(cdir, RootKeyFile))
	if err != nil {
		return nil, fmt.Errorf("failed to load consortium root key: %w", err)
	}
	c, err := LoadConsortium(filepath.Join(cdir, ConsortiumFile))
	if err != nil {
		return nil, err
	}
	if !c.RootKey.Equal(key.Public()) {
		return nil, fmt.Errorf("%s does not match %s in %s", RootKeyFile, ConsortiumFile, cdir)
	}
	return &Root{Consortium: c, key: key}, nil
}

// Admit signs a certificate for peerID, valid from now (less ClockSkew)
// until expires, with the next serial of the consortium. It writes
// members/<peer ID>/ with membership.json, consortium.json and the current
// revocations.json: the files to copy into that node's data directory.
func Admit(cdir string, peerID peer.ID, name, org string, roles []string, expires time.Time) (*Cert, error) {
	root, err := OpenRoot(cdir)
	if err != nil {
		return nil, err
	}
	serial, err := nextSerial(cdir)
	if err != nil {
		return nil, err
	}
	cert := &Cert{
		PeerID:    peerID,
		Name:      name,
		Org:       org,
		Roles:     roles,
		NotBefore: time.Now().Add(-ClockSkew),
		NotAfter:  expires,
		Serial:    serial,
	}
	if err := root.SignCert(cert); err != nil {
		return nil, fmt.Errorf("failed to sign certificate: %w", err)
	}
	rl, err := LoadRevocations(filepath.Join(cdir, RevocationsFile))
	if err != nil {
		return nil, err
	}
	mdir := filepath.Join(cdir, MembersDir, peerID.String())
	if err := os.MkdirAll(mdir, 0o755); err != nil {
		return nil, fmt.Errorf("failed to create member dir: %w", err)
	}
	if err := WriteNodeFiles(mdir, root.Consortium, cert, rl); err != nil {
		return nil, err
	}
	return cert, nil
}

// Revoke adds peerID to the consortium's revocation list and signs it with
// the next version. Revoking a revoked peer again changes nothing. Copy
// revocations.json to every node (or let them fetch it).
func Revoke(cdir string, peerID peer.ID, reason string) (*RevocationList, error) {
	root, err := OpenRoot(cdir)
	if err != nil {
		return nil, err
	}
	if err := validatePeerID(peerID); err != nil {
		return nil, err
	}
	path := filepath.Join(cdir, RevocationsFile)
	rl, err := LoadRevocations(path)
	if err != nil {
		return nil, err
	}
	if rl.IsRevoked(peerID) {
		return rl, nil
	}
	now := time.Now()
	next := &RevocationList{
		Version: rl.Version + 1,
		Issued:  now,
		Revoked: append(slices.Clone(rl.Revoked), Revocation{PeerID: peerID, Reason: reason, RevokedAt: now}),
	}
	if err := root.SignRevocations(next); err != nil {
		return nil, fmt.Errorf("failed to sign revocation list: %w", err)
	}
	if err := writeJSONFile(path, next); err != nil {
		return nil, err
	}
	return next, nil
}

// WriteNodeFiles writes consortium.json, membership.json and (if rl is not
// nil) revocations.json into dir.
func WriteNodeFiles(dir string, c *Consortium, cert *Cert, rl *RevocationList) error {
	if err := writeJSONFile(filepath.Join(dir, ConsortiumFile), c); err != nil {
		return err
	}
	if err := writeJSONFile(filepath.Join(dir, CertFile), cert); err != nil {
		return err
	}
	if rl != nil {
		return writeJSONFile(filepath.Join(dir, RevocationsFile), rl)
	}
	return nil
}

// Node is what a node's data directory holds about its membership.
type Node struct {
	Consortium *Consortium
	Cert       *Cert
	// Revocations is nil if the directory has no revocations.json.
	Revocations *RevocationList
}

// LoadNode reads consortium.json, membership.json and revocations.json (if
// present) from a node's data directory and verifies the revocation list.
// It does not verify the certificate: the caller does, at the time it needs.
func LoadNode(dir string) (*Node, error) {
	c, err := LoadConsortium(filepath.Join(dir, ConsortiumFile))
	if err != nil {
		return nil, err
	}
	data, err := os.ReadFile(filepath.Join(dir, CertFile))
	if err != nil {
		return nil, fmt.Errorf("failed to read membership certificate (ask the consortium operator to run `xnode consortium admit`): %w", err)
	}
	cert, err := ParseCert(data)
	if err != nil {
		return nil, fmt.Errorf("failed to load %s: %w", CertFile, err)
	}
	n := &Node{Consortium: c, Cert: cert}
	rl, err := LoadRevocations(filepath.Join(dir, RevocationsFile))
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return nil, err
	default:
		if err := rl.Verify(c); err != nil {
			return nil, fmt.Errorf("failed to load %s: %w", RevocationsFile, err)
		}
		n.Revocations = rl
	}
	return n, nil
}

// LoadConsortium reads a consortium file.
func LoadConsortium(path string) (*Consortium, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("failed to read consortium file: %w", err)
	}
	c, err := ParseConsortium(data)
	if err != nil {
		return nil, fmt.Errorf("failed to load %s: %w", path, err)
	}
	return c, nil
}

// LoadRevocations reads a revocation list file; it does not verify it.
// A missing file gives an error wrapping fs.ErrNotExist.
func LoadRevocations(path string) (*RevocationList, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("failed to read revocation list: %w", err)
	}
	rl, err := ParseRevocationList(data)
	if err != nil {
		return nil, fmt.Errorf("failed to load %s: %w", path, err)
	}
	return rl, nil
}

func nextSerial(cdir string) (uint64, error) {
	path := filepath.Join(cdir, SerialFile)
	var last uint64
	data, err := os.ReadFile(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return 0, fmt.Errorf("failed to read serial: %w", err)
	default:
		last, err = strconv.ParseUint(strings.TrimSpace(string(data)), 10, 64)
		if err != nil {
			return 0, fmt.Errorf("failed to parse %s: %w", path, err)
		}
	}
	next := last + 1
	if err := writeFileAtomic(path, []byte(strconv.FormatUint(next, 10)+"\n"), 0o644); err != nil {
		return 0, err
	}
	return next, nil
}

type marshaler interface{ Marshal() ([]byte, error) }

func writeJSONFile(path string, v marshaler) error {
	data, err := v.Marshal()
	if err != nil {
		return fmt.Errorf("failed to encode %s: %w", filepath.Base(path), err)
	}
	return writeFileAtomic(path, append(data, '\n'), 0o644)
}

// writeFileAtomic replaces path with data: readers see the old or the new
// file, never a part.
func writeFileAtomic(path string, data []byte, mode os.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+"-*")
	if err != nil {
		return fmt.Errorf("failed to write %s: %w", path, err)
	}
	defer os.Remove(tmp.Name())
	_, err = tmp.Write(data)
	if err == nil {
		err = tmp.Chmod(mode)
	}
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err != nil {
		return fmt.Errorf("failed to write %s: %w", path, err)
	}
	return nil
}
