// Command deployment checks the deployment payloads of dms.jobs against Go's encoding/json and
// crypto/ed25519. The structs follow the Go DMS (dms/jobs/types bid.go@f3a4de1, behaviors.go
// @6ba1c7e, orchestrator commit.go@6d9f62f): untagged, so keys are the Go field names. Nested
// types whose bytes other programs already check (Resources, Location, Handle, SpecConfig) are
// kept as json.RawMessage, which Go re-emits compacted.
//
// Modes (first argument), one output line per stdin line:
//
//	verify    - each line is a Bid; prints {"valid":bool,"json":<re-marshalled Bid>}
//	sign      - each line is {"seed":hex,"bid":Bid}; prints the Bid signed by Go
//	remarshal - each line is {"kind":"bidrequest"|"commit"|"allocate","data":...}; prints
//	            the payload decoded into the Go struct and marshalled again
//
// A line that fails prints "ERR <message>".
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
	"time"
)

type BidRequestV1 struct {
	NodeID      string
	Executors   []string
	Resources   json.RawMessage
	Location    json.RawMessage
	PublicPorts struct {
		Static  []int
		Dynamic int
	}
	GeneralRequirements struct {
		PrivilegedDocker bool
	}
}

type BidRequest struct{ V1 *BidRequestV1 }

type EnsembleBidRequest struct {
	ID            string
	Nonce         uint64
	Request       []BidRequest
	PeerExclusion []string
}

type BidV1 struct {
	EnsembleID string
	NodeID     string
	Peer       string
	Location   json.RawMessage
	Handle     json.RawMessage
	Signature  []byte
}

type Bid struct{ V1 *BidV1 }

type BaseDBModel struct {
	ID        string
	CreatedAt time.Time
	UpdatedAt time.Time
	DeletedAt time.Time
}

type Resources struct {
	CPU  json.RawMessage   `json:"cpu"`
	GPUs []json.RawMessage `json:"gpus,omitempty"`
	RAM  json.RawMessage   `json:"ram"`
	Disk json.RawMessage   `json:"disk"`
}

type CommittedResources struct {
	BaseDBModel
	Resources
	AllocationID string `json:"allocationID"`
}

type CommitDeploymentRequest struct {
	EnsembleID     string
	AllocationName string
	NodeID         string
	Resources      CommittedResources
	PortMapping    map[int]int
}

type AllocationKey struct {
	Type string `json:"type"`
	File string `json:"file"`
	Dest string `json:"dest"`
}

type AllocationDeploymentConfig struct {
	Type             string
	Executor         string
	Resources        json.RawMessage
	Execution        json.RawMessage
	ProvisionScripts map[string][]byte
	Keys             []AllocationKey
	Volume           []json.RawMessage
}

type AllocationDeploymentRequest struct {
	EnsembleID  string
	NodeID      string
	Allocations map[string]AllocationDeploymentConfig
}

func signatureData(b *Bid) ([]byte, error) {
	c := *b.V1
	c.Signature = nil
	data, err := json.Marshal(&c)
	if err != nil {
		return nil, err
	}
	return append([]byte("dms-bid-"), data...), nil
}

const alphabet = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"

func base58(s string) ([]byte, error) {
	n := new(big.Int)
	for _, r := range s {
		i := -1
		for j, a := range alphabet {
			if a == r {
				i = j
			}
		}
		if i < 0 {
			return nil, errors.New("bad base58")
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

// peerKey extracts an Ed25519 key from a libp2p peer ID (identity multihash of the protobuf key).
func peerKey(peer string) (ed25519.PublicKey, error) {
	raw, err := base58(peer)
	if err != nil {
		return nil, err
	}
	if len(raw) < 2 || raw[0] != 0 || int(raw[1]) != len(raw)-2 {
		return nil, errors.New("not an identity multihash")
	}
	pb := raw[2:]
	if len(pb) != 36 || pb[0] != 0x08 || pb[1] != 0x01 || pb[2] != 0x12 || pb[3] != 0x20 {
		return nil, errors.New("not an Ed25519 key")
	}
	return ed25519.PublicKey(pb[4:]), nil
}

func verify(line []byte) (any, error) {
	var b Bid
	if err := json.Unmarshal(line, &b); err != nil {
		return nil, err
	}
	if b.V1 == nil {
		return nil, errors.New("bid V1 is nil")
	}
	key, err := peerKey(b.V1.Peer)
	if err != nil {
		return nil, err
	}
	data, err := signatureData(&b)
	if err != nil {
		return nil, err
	}
	out, err := json.Marshal(&b)
	if err != nil {
		return nil, err
	}
	return map[string]any{
		"valid": ed25519.Verify(key, data, b.V1.Signature),
		"json":  json.RawMessage(out),
	}, nil
}

func sign(line []byte) (any, error) {
	var req struct {
		Seed string
		Bid  Bid
	}
	if err := json.Unmarshal(line, &req); err != nil {
		return nil, err
	}
	seed, err := hex.DecodeString(req.Seed)
	if err != nil {
		return nil, err
	}
	data, err := signatureData(&req.Bid)
	if err != nil {
		return nil, err
	}
	req.Bid.V1.Signature = ed25519.Sign(ed25519.NewKeyFromSeed(seed), data)
	return &req.Bid, nil
}

func remarshal(line []byte) (any, error) {
	var req struct {
		Kind string
		Data json.RawMessage
	}
	if err := json.Unmarshal(line, &req); err != nil {
		return nil, err
	}
	var target any
	switch req.Kind {
	case "bidrequest":
		target = &EnsembleBidRequest{}
	case "commit":
		target = &CommitDeploymentRequest{}
	case "allocate":
		target = &AllocationDeploymentRequest{}
	default:
		return nil, fmt.Errorf("unknown kind %q", req.Kind)
	}
	if err := json.Unmarshal(req.Data, target); err != nil {
		return nil, err
	}
	return target, nil
}

func main() {
	modes := map[string]func([]byte) (any, error){"verify": verify, "sign": sign, "remarshal": remarshal}
	run, ok := modes[os.Args[1]]
	if !ok {
		fmt.Fprintln(os.Stderr, "unknown mode")
		os.Exit(2)
	}
	in := bufio.NewScanner(os.Stdin)
	in.Buffer(make([]byte, 1<<20), 1<<24)
	for in.Scan() {
		result, err := run(in.Bytes())
		if err == nil {
			var out []byte
			out, err = json.Marshal(result)
			if err == nil {
				fmt.Println(string(out))
				continue
			}
		}
		fmt.Println("ERR " + err.Error())
	}
}
