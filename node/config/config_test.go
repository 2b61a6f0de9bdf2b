package config_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"xnode/node/config"
)

func TestSaveLoadRoundTrip(t *testing.T) {
	dir := t.TempDir()
	c := config.Default("bank-a")
	c.Peers = []config.Peer{{Name: "bank-b", Addr: "/ip4/127.0.0.1/tcp/7410/p2p/12D3KooWExample"}}
	if err := config.Save(dir, c); err != nil {
		t.Fatal(err)
	}
	got, err := config.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	if got.Name != "bank-a" || len(got.Peers) != 1 || got.Peers[0].Name != "bank-b" || got.PSI.Suite != c.PSI.Suite {
		t.Errorf("Load after Save = %+v, want %+v", got, c)
	}
}

func TestLoadErrors(t *testing.T) {
	cases := []struct {
		name, content, want string
	}{
		{"unknown key", "name = \"a\"\nlisten = [\"/ip4/0.0.0.0/tcp/1\"]\napi = \"127.0.0.1:1\"\nlisen = []\n", "unknown keys lisen"},
		{"empty name", "name = \"\"\nlisten = [\"/ip4/0.0.0.0/tcp/1\"]\napi = \"127.0.0.1:1\"\n", "name is empty"},
		{"duplicate peer", "name = \"a\"\nlisten = [\"x\"]\napi = \"y\"\n[[peers]]\nname = \"b\"\naddr = \"z\"\n[[peers]]\nname = \"b\"\naddr = \"z\"\n", "appears twice"},
		{"bad toml", "name = \n", "failed to read"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			if err := os.WriteFile(filepath.Join(dir, config.FileName), []byte(tc.content), 0o644); err != nil {
				t.Fatal(err)
			}
			_, err := config.Load(dir)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Load = %v, want an error containing %q", err, tc.want)
			}
		})
	}
	if _, err := config.Load(t.TempDir()); !errors.Is(err, config.ErrNoConfig) {
		t.Errorf("Load(empty dir) = %v, want ErrNoConfig", err)
	}
}

func TestTokenIsPrivate(t *testing.T) {
	dir := t.TempDir()
	tok, err := config.NewToken(dir)
	if err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(filepath.Join(dir, config.TokenFile))
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("token file mode = %v, want 0600", st.Mode().Perm())
	}
	got, err := config.Token(dir)
	if err != nil || got != tok || len(tok) != 64 {
		t.Errorf("Token = %q, %v; want the 64-hex token %q", got, err, tok)
	}
}
