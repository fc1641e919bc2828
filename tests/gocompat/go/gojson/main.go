// Command gojson re-marshals JSON with Go's own encoding/json so the Python encoder can be
// compared with it byte for byte. Modes (first argument):
//
//	any  - each stdin line is a JSON value decoded into interface{} and re-marshalled
//	f32  - each stdin line is a JSON array of numbers marshalled as []float32
//	f64  - each stdin line is a JSON array of numbers marshalled as []float64
//	str  - each stdin line is a JSON array of ints (code points, -1 = invalid byte 0xff)
//	       turned into a Go string and marshalled
//
// One output line per input line; a line that fails prints "ERR <message>".
package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
)

func main() {
	mode := os.Args[1]
	in := bufio.NewScanner(os.Stdin)
	in.Buffer(make([]byte, 1<<20), 1<<24)
	out := bufio.NewWriter(os.Stdout)
	defer out.Flush()
	for in.Scan() {
		b, err := convert(mode, in.Bytes())
		if err != nil {
			fmt.Fprintf(out, "ERR %v\n", err)
			continue
		}
		out.Write(b)
		out.WriteByte('\n')
	}
}

func convert(mode string, line []byte) ([]byte, error) {
	switch mode {
	case "any":
		var v interface{}
		if err := json.Unmarshal(line, &v); err != nil {
			return nil, err
		}
		return json.Marshal(v)
	case "f32":
		var v []float32
		if err := json.Unmarshal(line, &v); err != nil {
			return nil, err
		}
		return json.Marshal(v)
	case "f64":
		var v []float64
		if err := json.Unmarshal(line, &v); err != nil {
			return nil, err
		}
		return json.Marshal(v)
	case "str":
		var points []int
		if err := json.Unmarshal(line, &points); err != nil {
			return nil, err
		}
		var s []byte
		for _, p := range points {
			if p < 0 {
				s = append(s, 0xff)
			} else {
				s = append(s, []byte(string(rune(p)))...)
			}
		}
		return json.Marshal(string(s))
	}
	return nil, fmt.Errorf("unknown mode %q", mode)
}
