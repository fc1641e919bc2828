// Command envelope checks actor envelopes against Go's own encoding/json and crypto/ed25519.
// The structs below are written from the Go DMS envelope format (spec section 2.1): same field
// order and json tags, and an ID with its own marshaller, so json.Marshal gives the bytes the Go
// DMS signs and verifies.
//
// Modes (first argument), one output line per stdin line:
//
//	verify - each line is an envelope JSON; prints {"full","unsigned","sig"} where full is the
//	         re-marshalled envelope, unsigned the re-marshalled envelope with Signature=nil (the
//	         signed bytes minus "dms:msg:") and sig "ok"/"bad" for Ed25519 senders or "skip"
//	         for other key types (the standard library has no secp256k1)
//	sign   - each line is a build request {"seed","to_seed","be","nonce","exp","cont","topic",
//	         "payload","nil_msg","cap","host","inbox","to_host"}; prints the envelope Go builds
//	         and signs from the Ed25519 seed (hex); "to" has host to_host (default: host)
//
// A line that fails prints "ERR <message>".
package main

import (
	"bufio"
	"bytes"
	"crypto/ed25519"
	"encoding/base32"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"os"
)

// ID is an actor ID: libp2p's protobuf-marshalled public key, on the wire {"pub": base32}.
type ID struct{ PublicKey []byte }

type idView struct {
	Pub string `json:"pub"`
}

func (id ID) MarshalJSON() ([]byte, error) {
	return json.Marshal(idView{Pub: base32.StdEncoding.EncodeToString(id.PublicKey)})
}

func (id *ID) UnmarshalJSON(data []byte) error {
	var v idView
	if err := json.Unmarshal(data, &v); err != nil {
		return err
	}
	raw, err := base32.StdEncoding.DecodeString(v.Pub)
	if err != nil {
		return fmt.Errorf("decode ID: %w", err)
	}
	id.PublicKey = raw
	return nil
}

type DID struct {
	URI string `json:"uri,omitempty"`
}

type Address struct {
	HostID       string `json:"host,omitempty"`
	InboxAddress string `json:"inbox,omitempty"`
}

type Handle struct {
	ID      ID      `json:"id"`
	DID     DID     `json:"did"`
	Address Address `json:"addr"`
}

type EnvelopeOptions struct {
	Expire  uint64 `json:"exp"`
	ReplyTo string `json:"cont,omitempty"`
	Topic   string `json:"topic,omitempty"`
}

type Envelope struct {
	To         Handle          `json:"to"`
	Behavior   string          `json:"be"`
	From       Handle          `json:"from"`
	Nonce      uint64          `json:"nonce"`
	Options    EnvelopeOptions `json:"opt"`
	Message    []byte          `json:"msg"`
	Capability []byte          `json:"cap,omitempty"`
	Signature  []byte          `json:"sig,omitempty"`
}

type report struct {
	Full     []byte `json:"full"`
	Unsigned []byte `json:"unsigned"`
	Sig      string `json:"sig"`
}

type request struct {
	Seed    string          `json:"seed"`
	ToSeed  string          `json:"to_seed"`
	Be      string          `json:"be"`
	Nonce   uint64          `json:"nonce"`
	Exp     uint64          `json:"exp"`
	Cont    string          `json:"cont"`
	Topic   string          `json:"topic"`
	Payload json.RawMessage `json:"payload"`
	NilMsg  bool            `json:"nil_msg"`
	Cap     []byte          `json:"cap"`
	Host    string          `json:"host"`
	Inbox   string          `json:"inbox"`
	ToHost  string          `json:"to_host"`
}

// ed25519Header is the libp2p protobuf prefix of an Ed25519 public key: Type=1, Data len 32.
var ed25519Header = []byte{0x08, 0x01, 0x12, 0x20}

const b58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"

func base58(data []byte) string {
	n := new(big.Int).SetBytes(data)
	radix, digit := big.NewInt(58), new(big.Int)
	var out []byte
	for n.Sign() > 0 {
		n.DivMod(n, radix, digit)
		out = append(out, b58[digit.Int64()])
	}
	for _, c := range data {
		if c != 0 {
			break
		}
		out = append(out, '1')
	}
	for i, j := 0, len(out)-1; i < j; i, j = i+1, j-1 {
		out[i], out[j] = out[j], out[i]
	}
	return string(out)
}

func unsignedBytes(env Envelope) []byte {
	env.Signature = nil
	data, err := json.Marshal(&env)
	if err != nil {
		panic(err)
	}
	return data
}

func verify(line []byte) ([]byte, error) {
	var env Envelope
	if err := json.Unmarshal(line, &env); err != nil {
		return nil, err
	}
	full, err := json.Marshal(&env)
	if err != nil {
		return nil, err
	}
	r := report{Full: full, Unsigned: unsignedBytes(env), Sig: "skip"}
	pub := env.From.ID.PublicKey
	if len(pub) == 36 && bytes.HasPrefix(pub, ed25519Header) {
		signed := append([]byte("dms:msg:"), r.Unsigned...)
		if ed25519.Verify(ed25519.PublicKey(pub[4:]), signed, env.Signature) {
			r.Sig = "ok"
		} else {
			r.Sig = "bad"
		}
	}
	return json.Marshal(&r)
}

func handleOf(seedHex, host, inbox string) (Handle, ed25519.PrivateKey, error) {
	seed, err := hex.DecodeString(seedHex)
	if err != nil || len(seed) != ed25519.SeedSize {
		return Handle{}, nil, errors.New("bad seed")
	}
	key := ed25519.NewKeyFromSeed(seed)
	pub := key.Public().(ed25519.PublicKey)
	h := Handle{
		ID:      ID{PublicKey: append(append([]byte{}, ed25519Header...), pub...)},
		DID:     DID{URI: "did:key:z" + base58(append([]byte{0xed, 0x01}, pub...))},
		Address: Address{HostID: host, InboxAddress: inbox},
	}
	return h, key, nil
}

func build(line []byte) ([]byte, error) {
	var req request
	if err := json.Unmarshal(line, &req); err != nil {
		return nil, err
	}
	from, key, err := handleOf(req.Seed, req.Host, req.Inbox)
	if err != nil {
		return nil, err
	}
	var to Handle
	if req.ToSeed != "" {
		toHost := req.Host
		if req.ToHost != "" {
			toHost = req.ToHost
		}
		if to, _, err = handleOf(req.ToSeed, toHost, "root"); err != nil {
			return nil, err
		}
	}
	msg := []byte{}
	if req.NilMsg {
		msg = nil
	} else if len(req.Payload) > 0 && string(req.Payload) != "null" {
		var payload interface{}
		if err := json.Unmarshal(req.Payload, &payload); err != nil {
			return nil, err
		}
		if msg, err = json.Marshal(payload); err != nil {
			return nil, err
		}
	}
	env := Envelope{
		To: to, Behavior: req.Be, From: from, Nonce: req.Nonce,
		Options:    EnvelopeOptions{Expire: req.Exp, ReplyTo: req.Cont, Topic: req.Topic},
		Message:    msg,
		Capability: req.Cap,
	}
	env.Signature = ed25519.Sign(key, append([]byte("dms:msg:"), unsignedBytes(env)...))
	return json.Marshal(&env)
}

func main() {
	mode := os.Args[1]
	in := bufio.NewScanner(os.Stdin)
	in.Buffer(make([]byte, 1<<20), 1<<24)
	out := bufio.NewWriter(os.Stdout)
	defer out.Flush()
	for in.Scan() {
		var b []byte
		var err error
		switch mode {
		case "verify":
			b, err = verify(in.Bytes())
		case "sign":
			b, err = build(in.Bytes())
		default:
			err = fmt.Errorf("unknown mode %q", mode)
		}
		if err != nil {
			fmt.Fprintf(out, "ERR %s\n", bytes.ReplaceAll([]byte(err.Error()), []byte("\n"), []byte(" ")))
			continue
		}
		out.Write(b)
		out.WriteByte('\n')
	}
}
