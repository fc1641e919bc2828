// Command jsonfields shows how Go's own encoding/json matches JSON object keys to struct
// fields, so the Python decoder (dms.gojson) can be compared with it. Modes (first argument):
//
//	fields - each stdin line is a JSON object decoded into Probe; the output line is a JSON
//	         object mapping each field's JSON name to the raw values that landed in it, in
//	         order (fields nothing landed in are left out), or "ERR <message>"
//	orbits - no input; one line per rune r whose fold orbit has more than one member:
//	         "<r> <smallest rune of the orbit>" (both as decimal numbers)
//	letters - each stdin line is a decimal rune; prints 1 if Go's Unicode tables know it as a
//	         letter, else 0 (tells runes newer than Go's Unicode version apart)
package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"reflect"
	"unicode"
)

// landing records every raw value Go decodes into a field. Go calls UnmarshalJSON once per
// key that lands in the field (null included), so a repeated key shows up as two entries.
type landing struct{ raw []json.RawMessage }

func (l *landing) UnmarshalJSON(b []byte) error {
	l.raw = append(l.raw, append(json.RawMessage(nil), b...))
	return nil
}

// Probe has ASCII names (where the Kelvin sign and long s may stand for k and s), two names that
// fold alike (exact matches win, otherwise the first declared), and non-ASCII names (Greek,
// German, titlecase digraphs, Cherokee) whose case differs only outside ASCII.
type Probe struct {
	Name    landing `json:"name"`
	Kind    landing `json:"Kind"`
	Sig     landing `json:"sig"`
	Upper   landing `json:"AB"`
	Lower   landing `json:"ab"`
	Mixed   landing `json:"aB"`
	Strasse landing `json:"straße"`
	Omega   landing `json:"ωmega"`
	Dz      landing `json:"ǆ"`
	Micro   landing `json:"µs"`
	Sigma   landing `json:"σ"`
	Cherok  landing `json:"Ꭰx"`
	Angst   landing `json:"å"`
	ID      landing `json:"id"`
	Under   landing `json:"snake_case"`
}

func main() {
	out := bufio.NewWriter(os.Stdout)
	defer out.Flush()
	switch os.Args[1] {
	case "orbits":
		for r := rune(0); r <= unicode.MaxRune; r++ {
			if unicode.SimpleFold(r) == r {
				continue
			}
			min := r
			for f := unicode.SimpleFold(r); f != r; f = unicode.SimpleFold(f) {
				if f < min {
					min = f
				}
			}
			fmt.Fprintf(out, "%d %d\n", r, min)
		}
	case "letters":
		in := bufio.NewScanner(os.Stdin)
		for in.Scan() {
			var r rune
			fmt.Sscan(in.Text(), &r)
			if unicode.IsLetter(r) {
				out.WriteString("1\n")
			} else {
				out.WriteString("0\n")
			}
		}
	case "fields":
		in := bufio.NewScanner(os.Stdin)
		in.Buffer(make([]byte, 1<<20), 1<<24)
		for in.Scan() {
			var p Probe
			if err := json.Unmarshal(in.Bytes(), &p); err != nil {
				fmt.Fprintf(out, "ERR %v\n", err)
				continue
			}
			b, err := json.Marshal(landings(&p))
			if err != nil {
				fmt.Fprintf(out, "ERR %v\n", err)
				continue
			}
			out.Write(b)
			out.WriteByte('\n')
		}
	default:
		fmt.Fprintf(os.Stderr, "unknown mode %q\n", os.Args[1])
		os.Exit(2)
	}
}

// landings maps each field's JSON name to what landed in it.
func landings(p *Probe) map[string][]json.RawMessage {
	out := map[string][]json.RawMessage{}
	v := reflect.ValueOf(p).Elem()
	for i := 0; i < v.NumField(); i++ {
		l := v.Field(i).Addr().Interface().(*landing)
		if len(l.raw) > 0 {
			out[v.Type().Field(i).Tag.Get("json")] = l.raw
		}
	}
	return out
}
