package crypto_test

import (
	"bytes"
	"crypto/rand"
	"fmt"
	"log"

	"xnode/crypto"
)

// Two institutions learn whether they share an identifier without sending
// it: each blinds H(id) with its own key, the other re-blinds, and the
// doubly-blinded values are equal exactly when the identifiers are.
func Example() {
	suite, err := crypto.Lookup(crypto.DefaultSuite)
	if err != nil {
		log.Fatal(err)
	}
	alice, err := suite.NewKey(rand.Reader)
	if err != nil {
		log.Fatal(err)
	}
	bob, err := suite.NewKey(rand.Reader)
	if err != nil {
		log.Fatal(err)
	}
	dst := crypto.DST("psi-ecdh", suite.Name(), []byte("session-1"))

	// Alice sends a·H(x); Bob returns b·a·H(x).
	ax := make([]byte, suite.ElementSize())
	if err := alice.HashBlind(ax, []byte("cn_id:11010519491231002X"), dst); err != nil {
		log.Fatal(err)
	}
	if err := bob.Blind(ax, ax); err != nil { // validates Alice's element first
		log.Fatal(err)
	}
	// Bob sends b·H(y); Alice computes a·b·H(y).
	by := make([]byte, suite.ElementSize())
	if err := bob.HashBlind(by, []byte("cn_id:11010519491231002X"), dst); err != nil {
		log.Fatal(err)
	}
	if err := alice.Blind(by, by); err != nil {
		log.Fatal(err)
	}

	fmt.Println("same identifier:", bytes.Equal(ax, by))
	fmt.Println(alice)
	// Output:
	// same identifier: true
	// crypto.Key(x25519-elligator2, redacted)
}
