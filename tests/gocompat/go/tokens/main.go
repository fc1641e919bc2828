// Command tokens checks capability tokens against Go's own encoding/json and crypto/ed25519.
// The structs below are written from the Go DMS token format (spec section 3.1): same field
// order and json tags, so json.Marshal gives the bytes the Go DMS signs and verifies.
//
// Modes (first argument):
//
//	verify                 - each stdin line is a TokenList JSON; prints one JSON line with the
//	                         re-marshalled list and, for every token and chain link (depth first),
//	                         the signed bytes and whether the Ed25519 signature verifies
//	sign SEED1 SEED2 EXP   - hex seeds; prints a TokenList with a delegate token from SEED1's DID
//	                         to SEED2's DID, an invoke token chained from it issued by SEED2, and
//	                         an old-style revoke token (cap null) issued by SEED1
//
// A line that fails to parse prints "ERR <message>".
package main

import (
	"bufio"
	"crypto/ed25519"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"os"
	"strconv"
	"strings"
)

type DID struct {
	URI string `json:"uri,omitempty"`
}

type Capability string

type Action string

type BYOToken struct{}

type Token struct {
	DMS  *DMSToken `json:"dms,omitempty"`
	UCAN *BYOToken `json:"ucan,omitempty"`
}

type DMSToken struct {
	Action     Action       `json:"act"`
	Issuer     DID          `json:"iss"`
	Subject    DID          `json:"sub"`
	Audience   DID          `json:"aud"`
	Topic      []Capability `json:"topic,omitempty"`
	Capability []Capability `json:"cap"`
	Nonce      []byte       `json:"nonce"`
	Expire     uint64       `json:"exp"`
	Depth      uint64       `json:"depth,omitempty"`
	Chain      *Token       `json:"chain,omitempty"`
	Signature  []byte       `json:"sig,omitempty"`
}

type TokenList struct {
	Tokens []*Token `json:"tok,omitempty"`
}

type link struct {
	Data []byte `json:"data"`
	OK   bool   `json:"ok"`
}

type report struct {
	List  []byte `json:"list"`
	Links []link `json:"links"`
}

const alphabet = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"

func base58Decode(s string) ([]byte, error) {
	n := new(big.Int)
	for _, r := range s {
		i := strings.IndexRune(alphabet, r)
		if i < 0 {
			return nil, errors.New("invalid base58 character")
		}
		n.Mul(n, big.NewInt(58))
		n.Add(n, big.NewInt(int64(i)))
	}
	out := n.Bytes()
	for _, r := range s {
		if r != '1' {
			break
		}
		out = append([]byte{0}, out...)
	}
	return out, nil
}

func base58Encode(b []byte) string {
	n := new(big.Int).SetBytes(b)
	var out []byte
	mod := new(big.Int)
	base := big.NewInt(58)
	for n.Sign() > 0 {
		n.DivMod(n, base, mod)
		out = append([]byte{alphabet[mod.Int64()]}, out...)
	}
	for _, c := range b {
		if c != 0 {
			break
		}
		out = append([]byte{'1'}, out...)
	}
	return string(out)
}

func publicKey(d DID) (ed25519.PublicKey, error) {
	if !strings.HasPrefix(d.URI, "did:key:z") {
		return nil, errors.New("not a base58btc did:key")
	}
	raw, err := base58Decode(d.URI[len("did:key:z"):])
	if err != nil {
		return nil, err
	}
	if len(raw) != 34 || raw[0] != 0xed || raw[1] != 0x01 {
		return nil, errors.New("not an ed25519 did:key")
	}
	return ed25519.PublicKey(raw[2:]), nil
}

func didOf(pub ed25519.PublicKey) DID {
	return DID{URI: "did:key:z" + base58Encode(append([]byte{0xed, 0x01}, pub...))}
}

func signingBytes(t *DMSToken) []byte {
	unsigned := *t
	unsigned.Signature = nil
	data, err := json.Marshal(&unsigned)
	if err != nil {
		panic(err)
	}
	return data
}

func sign(t *DMSToken, key ed25519.PrivateKey) {
	t.Signature = ed25519.Sign(key, append([]byte("dms:token:"), signingBytes(t)...))
}

func walk(t *Token, out []link) []link {
	if t == nil || t.DMS == nil {
		return append(out, link{})
	}
	data := signingBytes(t.DMS)
	ok := false
	if pub, err := publicKey(t.DMS.Issuer); err == nil {
		ok = ed25519.Verify(pub, append([]byte("dms:token:"), data...), t.DMS.Signature)
	}
	out = append(out, link{Data: data, OK: ok})
	if t.DMS.Chain != nil {
		out = walk(t.DMS.Chain, out)
	}
	return out
}

func verify(line []byte) ([]byte, error) {
	var list TokenList
	if err := json.Unmarshal(line, &list); err != nil {
		return nil, err
	}
	remarshalled, err := json.Marshal(&list)
	if err != nil {
		return nil, err
	}
	r := report{List: remarshalled, Links: []link{}}
	for _, t := range list.Tokens {
		r.Links = walk(t, r.Links)
	}
	return json.Marshal(&r)
}

func makeTokens(seed1, seed2 string, exp uint64) ([]byte, error) {
	s1, err := hex.DecodeString(seed1)
	if err != nil || len(s1) != ed25519.SeedSize {
		return nil, errors.New("bad seed 1")
	}
	s2, err := hex.DecodeString(seed2)
	if err != nil || len(s2) != ed25519.SeedSize {
		return nil, errors.New("bad seed 2")
	}
	k1, k2 := ed25519.NewKeyFromSeed(s1), ed25519.NewKeyFromSeed(s2)
	d1, d2 := didOf(k1.Public().(ed25519.PublicKey)), didOf(k2.Public().(ed25519.PublicKey))
	parent := &DMSToken{
		Action: "delegate", Issuer: d1, Subject: d2,
		Topic:      []Capability{"/nunet"},
		Capability: []Capability{"/dms/<a&b>", "/public"},
		Nonce:      []byte("go-nonce-012"), Expire: exp, Depth: 2,
	}
	sign(parent, k1)
	child := &DMSToken{
		Action: "invoke", Issuer: d2, Subject: d1, Audience: d1,
		Capability: []Capability{"/dms/<a&b>/x", "/public/\u00e9\u2028"},
		Nonce:      []byte{}, Expire: exp - 1, Chain: &Token{DMS: parent},
	}
	sign(child, k2)
	revoke := &DMSToken{
		Action: "revoke", Issuer: d1, Subject: d2, Nonce: parent.Nonce, Expire: exp,
	}
	sign(revoke, k1)
	return json.Marshal(&TokenList{Tokens: []*Token{{DMS: parent}, {DMS: child}, {DMS: revoke}}})
}

func main() {
	out := bufio.NewWriter(os.Stdout)
	defer out.Flush()
	switch os.Args[1] {
	case "sign":
		exp, err := strconv.ParseUint(os.Args[4], 10, 64)
		if err != nil {
			fmt.Fprintf(out, "ERR %v\n", err)
			return
		}
		b, err := makeTokens(os.Args[2], os.Args[3], exp)
		if err != nil {
			fmt.Fprintf(out, "ERR %v\n", err)
			return
		}
		out.Write(b)
		out.WriteByte('\n')
	case "verify":
		in := bufio.NewScanner(os.Stdin)
		in.Buffer(make([]byte, 1<<20), 1<<24)
		for in.Scan() {
			b, err := verify(in.Bytes())
			if err != nil {
				fmt.Fprintf(out, "ERR %v\n", err)
				continue
			}
			out.Write(b)
			out.WriteByte('\n')
		}
	default:
		fmt.Fprintf(out, "ERR unknown mode %q\n", os.Args[1])
	}
}
