package identity_test

import (
	"crypto/ed25519"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"xnode/node/identity"
)

func TestLoadOrCreatePersists(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	a, err := identity.LoadOrCreate(dir)
	if err != nil {
		t.Fatalf("LoadOrCreate(new dir) error = %v", err)
	}
	st, err := os.Stat(filepath.Join(dir, identity.KeyFile))
	if err != nil {
		t.Fatalf("key file missing after LoadOrCreate: %v", err)
	}
	if runtime.GOOS != "windows" && st.Mode().Perm() != 0o600 {
		t.Errorf("key file mode = %04o, want 0600", st.Mode().Perm())
	}
	b, err := identity.LoadOrCreate(dir)
	if err != nil {
		t.Fatalf("LoadOrCreate(existing) error = %v", err)
	}
	if a.ID() != b.ID() {
		t.Errorf("LoadOrCreate twice gave peer IDs %s and %s, want the same", a.ID(), b.ID())
	}
	c, err := identity.Load(dir)
	if err != nil {
		t.Fatalf("Load error = %v", err)
	}
	if c.ID() != a.ID() {
		t.Errorf("Load gave %s, want %s", c.ID(), a.ID())
	}
	if strings.Contains(a.String(), "PRIVATE") || !strings.HasPrefix(a.String(), "identity:") {
		t.Errorf("String() = %q, want identity:<peer ID>", a.String())
	}
	// The libp2p key and peer ID agree.
	pub, err := a.PrivKey().GetPublic().Raw()
	if err != nil || string(pub) != string(a.PublicKey()) {
		t.Errorf("PrivKey().GetPublic() does not match PublicKey()")
	}
}

func TestLoadMissing(t *testing.T) {
	_, err := identity.Load(t.TempDir())
	if !errors.Is(err, identity.ErrNoKey) {
		t.Fatalf("Load(empty dir) error = %v, want ErrNoKey", err)
	}
}

func TestLoadRefusesLooseMode(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("no Unix permissions on windows")
	}
	dir := t.TempDir()
	if _, err := identity.LoadOrCreate(dir); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, identity.KeyFile)
	for _, mode := range []os.FileMode{0o640, 0o604, 0o644} {
		if err := os.Chmod(path, mode); err != nil {
			t.Fatal(err)
		}
		_, err := identity.Load(dir)
		if !errors.Is(err, identity.ErrKeyPermissions) {
			t.Errorf("Load(mode %04o) error = %v, want ErrKeyPermissions", mode, err)
			continue
		}
		if want := "chmod 600 " + path; !strings.Contains(err.Error(), want) {
			t.Errorf("Load(mode %04o) error = %q, want it to say %q", mode, err, want)
		}
		if _, err := identity.LoadOrCreate(dir); !errors.Is(err, identity.ErrKeyPermissions) {
			t.Errorf("LoadOrCreate(mode %04o) error = %v, want ErrKeyPermissions (never replace a key)", mode, err)
		}
	}
}

func TestLoadRefusesGarbage(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, identity.KeyFile), []byte("not a key"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := identity.Load(dir); !errors.Is(err, identity.ErrBadKey) {
		t.Fatalf("Load(garbage) error = %v, want ErrBadKey", err)
	}
}

func TestWriteKeyFileNeverOverwrites(t *testing.T) {
	dir := t.TempDir()
	_, ka, _ := ed25519.GenerateKey(nil)
	_, kb, _ := ed25519.GenerateKey(nil)
	path := filepath.Join(dir, "k.key")
	if err := identity.WriteKeyFile(path, ka); err != nil {
		t.Fatal(err)
	}
	if err := identity.WriteKeyFile(path, kb); !errors.Is(err, fs.ErrExist) {
		t.Fatalf("WriteKeyFile(existing) error = %v, want fs.ErrExist", err)
	}
	got, err := identity.ReadKeyFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !got.Equal(ka) {
		t.Errorf("key file changed after refused overwrite")
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("dir has %d entries after writes, want 1 (no temp files left)", len(entries))
	}
}

func TestVerify(t *testing.T) {
	a, err := identity.Generate(nil)
	if err != nil {
		t.Fatal(err)
	}
	b, err := identity.Generate(nil)
	if err != nil {
		t.Fatal(err)
	}
	msg := []byte("proposal")
	sig := a.Sign(msg)
	if !identity.Verify(a.ID(), msg, sig) {
		t.Error("Verify refused a's own signature")
	}
	if identity.Verify(b.ID(), msg, sig) {
		t.Error("Verify accepted a's signature under b's peer ID")
	}
	if identity.Verify(a.ID(), []byte("other"), sig) {
		t.Error("Verify accepted a signature of another message")
	}
}
