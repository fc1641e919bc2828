// Command subnet checks the subnet payloads of dms.subnet against Go's encoding/json. The structs
// follow the Go DMS (dms/orchestrator/subnet.go: SubnetCreateRequest, SubnetJoinRequest with
// the RoutingTable of its newer version (dms/node restore);
// dms/behaviors payloads: the allocation subnet requests): untagged, so keys are field names.
//
// Mode remarshal: each stdin line is {"kind":..., "data":...}; the data is decoded into the Go
// struct of that kind and marshalled again (one line out per line in; "ERR <message>" on error).
package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
)

type SubnetCreateRequest struct {
	SubnetID     string
	IP           string
	RoutingTable map[string]string
}

type SubnetJoinRequest struct {
	SubnetID     string
	PeerID       string
	IP           string
	RoutingTable map[string]string
	Records      map[string]string
}

type SubnetDestroyRequest struct{ SubnetID string }

type SubnetAddPeerRequest struct {
	SubnetID string
	PeerID   string
	IP       string
}

type SubnetAcceptPeersRequest struct {
	SubnetID            string
	PartialRoutingTable map[string]string
}

type SubnetMapPortRequest struct {
	SubnetID   string
	Protocol   string
	SourceIP   string
	SourcePort string
	DestIP     string
	DestPort   string
}

type SubnetDNSAddRecordsRequest struct {
	SubnetID string
	Records  map[string]string
}

type SubnetDNSRemoveRecordsRequest struct {
	SubnetID    string
	DomainNames []string
}

type Response struct {
	OK    bool
	Error string
}

func target(kind string) (any, error) {
	switch kind {
	case "create":
		return &SubnetCreateRequest{}, nil
	case "join":
		return &SubnetJoinRequest{}, nil
	case "destroy":
		return &SubnetDestroyRequest{}, nil
	case "addpeer":
		return &SubnetAddPeerRequest{}, nil
	case "peers":
		return &SubnetAcceptPeersRequest{}, nil
	case "mapport":
		return &SubnetMapPortRequest{}, nil
	case "dnsadd":
		return &SubnetDNSAddRecordsRequest{}, nil
	case "dnsremove":
		return &SubnetDNSRemoveRecordsRequest{}, nil
	case "response":
		return &Response{}, nil
	}
	return nil, fmt.Errorf("unknown kind %q", kind)
}

func remarshal(line []byte) ([]byte, error) {
	var in struct {
		Kind string          `json:"kind"`
		Data json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal(line, &in); err != nil {
		return nil, err
	}
	v, err := target(in.Kind)
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal(in.Data, v); err != nil {
		return nil, err
	}
	return json.Marshal(v)
}

func main() {
	if len(os.Args) != 2 || os.Args[1] != "remarshal" {
		fmt.Fprintln(os.Stderr, "usage: subnet remarshal")
		os.Exit(2)
	}
	in := bufio.NewScanner(os.Stdin)
	in.Buffer(make([]byte, 1<<20), 1<<24)
	out := bufio.NewWriter(os.Stdout)
	defer out.Flush()
	for in.Scan() {
		data, err := remarshal(in.Bytes())
		if err != nil {
			fmt.Fprintf(out, "ERR %v\n", err)
			continue
		}
		out.Write(data)
		out.WriteString("\n")
	}
}
