package main

import (
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"strings"

	yaml "gopkg.in/yaml.v2"
)

// Values is the type of .Values, like Helm's chartutil.Values.
type Values map[string]interface{}

// AsMap returns the values as a plain map (Helm's Values.AsMap).
func (v Values) AsMap() map[string]interface{} {
	if v == nil {
		return map[string]interface{}{}
	}
	return v
}

// YAML encodes the values the way toYaml does (Helm's Values.YAML).
func (v Values) YAML() (string, error) {
	return toYAMLStrict(map[string]interface{}(v))
}

// yamlToJSONCompatible decodes YAML the way sigs.k8s.io/yaml does for Helm:
// YAML is converted to JSON and decoded with encoding/json, so maps have
// string keys and every number becomes a float64.
func yamlToJSONCompatible(data []byte) (interface{}, error) {
	var raw interface{}
	if err := yaml.Unmarshal(data, &raw); err != nil {
		return nil, err
	}
	conv, err := jsonify(raw)
	if err != nil {
		return nil, err
	}
	j, err := json.Marshal(conv)
	if err != nil {
		return nil, err
	}
	var out interface{}
	if err := json.Unmarshal(j, &out); err != nil {
		return nil, err
	}
	return out, nil
}

// jsonify turns yaml.v2's decoded tree into something encoding/json accepts.
func jsonify(v interface{}) (interface{}, error) {
	switch t := v.(type) {
	case map[interface{}]interface{}:
		m := make(map[string]interface{}, len(t))
		for k, val := range t {
			var key string
			switch kk := k.(type) {
			case string:
				key = kk
			case int:
				key = strconv.Itoa(kk)
			case int64:
				key = strconv.FormatInt(kk, 10)
			case uint64:
				key = strconv.FormatUint(kk, 10)
			case float64:
				key = strconv.FormatFloat(kk, 'g', -1, 64)
			case bool:
				key = strconv.FormatBool(kk)
			case nil:
				key = "null"
			default:
				return nil, fmt.Errorf("unsupported map key %#v", k)
			}
			c, err := jsonify(val)
			if err != nil {
				return nil, err
			}
			m[key] = c
		}
		return m, nil
	case []interface{}:
		out := make([]interface{}, len(t))
		for i, e := range t {
			c, err := jsonify(e)
			if err != nil {
				return nil, err
			}
			out[i] = c
		}
		return out, nil
	default:
		return v, nil
	}
}

// readValues parses a values document into a map ("" or null gives an empty map).
func readValues(data []byte) (map[string]interface{}, error) {
	v, err := yamlToJSONCompatible(data)
	if err != nil {
		return nil, err
	}
	if v == nil {
		return map[string]interface{}{}, nil
	}
	m, ok := v.(map[string]interface{})
	if !ok {
		return nil, fmt.Errorf("values must be a map, got %T", v)
	}
	return m, nil
}

// mergeMaps is Helm's merge of successive -f files: nested maps merge, anything else replaces.
func mergeMaps(a, b map[string]interface{}) map[string]interface{} {
	out := make(map[string]interface{}, len(a))
	for k, v := range a {
		out[k] = v
	}
	for k, v := range b {
		if vm, ok := v.(map[string]interface{}); ok {
			if bv, ok := out[k]; ok {
				if bm, ok := bv.(map[string]interface{}); ok {
					out[k] = mergeMaps(bm, vm)
					continue
				}
			}
		}
		out[k] = v
	}
	return out
}

func istable(v interface{}) bool {
	_, ok := v.(map[string]interface{})
	return ok
}

// coalesceValues overlays user values on the chart defaults like Helm's
// chartutil.CoalesceValues: user values win, and a user null deletes the key.
func coalesceValues(warn func(string), defaults, user map[string]interface{}) map[string]interface{} {
	v := deepCopy(user).(map[string]interface{})
	for key, val := range defaults {
		if value, ok := v[key]; ok {
			if value == nil {
				delete(v, key)
			} else if dest, ok := value.(map[string]interface{}); ok {
				src, ok := val.(map[string]interface{})
				if !ok {
					if val != nil {
						warn(fmt.Sprintf("skipped value for %s: Not a table.", key))
					}
				} else {
					coalesceTables(warn, dest, src, key)
				}
			}
		} else {
			v[key] = deepCopy(val)
		}
	}
	return v
}

func coalesceTables(warn func(string), dst, src map[string]interface{}, prefix string) {
	for key, val := range src {
		fullkey := prefix + "." + key
		dv, ok := dst[key]
		switch {
		case ok && dv == nil:
			delete(dst, key)
		case !ok:
			dst[key] = deepCopy(val)
		case istable(val):
			if istable(dv) {
				coalesceTables(warn, dv.(map[string]interface{}), val.(map[string]interface{}), fullkey)
			} else {
				warn(fmt.Sprintf("cannot overwrite table with non table for %s (%v)", fullkey, val))
			}
		case istable(dv) && val != nil:
			warn(fmt.Sprintf("destination for %s is a table. Ignoring non-table value (%v)", fullkey, val))
		}
	}
}

func deepCopy(v interface{}) interface{} {
	switch t := v.(type) {
	case map[string]interface{}:
		m := make(map[string]interface{}, len(t))
		for k, e := range t {
			m[k] = deepCopy(e)
		}
		return m
	case Values:
		return deepCopy(map[string]interface{}(t))
	case []interface{}:
		s := make([]interface{}, len(t))
		for i, e := range t {
			s[i] = deepCopy(e)
		}
		return s
	default:
		return v
	}
}

// ---- --set parsing: the common subset of Helm's strvals ----

// parseSet applies one --set style argument ("a.b=1,c[0]=x,d={x,y}") to dst.
// With asString every value stays a string (--set-string); with fileReader
// each value is a file path whose contents become the value (--set-file).
func parseSet(s string, dst map[string]interface{}, asString bool, fileReader func(string) (interface{}, error)) error {
	p := &setParser{s: []rune(s), st: asString, reader: fileReader}
	for p.pos < len(p.s) {
		if err := p.assignment(dst); err != nil {
			return fmt.Errorf("failed parsing --set data %q: %v", s, err)
		}
	}
	return nil
}

type setParser struct {
	s      []rune
	pos    int
	st     bool
	reader func(string) (interface{}, error)
}

type pathElem struct {
	key   string
	index int
	isIdx bool
}

// assignment parses "key=value" up to and including the following comma.
func (p *setParser) assignment(dst map[string]interface{}) error {
	var path []pathElem
	var key []rune
	for {
		if p.pos >= len(p.s) {
			if len(path) == 0 && len(key) == 0 {
				return nil
			}
			return fmt.Errorf("key %q has no value", string(key))
		}
		c := p.s[p.pos]
		switch c {
		case '\\':
			if p.pos+1 < len(p.s) {
				key = append(key, p.s[p.pos+1])
			}
			p.pos += 2
			continue
		case '.':
			if len(key) > 0 {
				path = append(path, pathElem{key: string(key)})
			}
			key = nil
			p.pos++
			continue
		case '[':
			if len(key) > 0 {
				path = append(path, pathElem{key: string(key)})
				key = nil
			}
			end := p.pos + 1
			for end < len(p.s) && p.s[end] != ']' {
				end++
			}
			if end >= len(p.s) {
				return fmt.Errorf("unterminated list index")
			}
			idx, err := strconv.Atoi(string(p.s[p.pos+1 : end]))
			if err != nil || idx < 0 {
				return fmt.Errorf("invalid list index %q", string(p.s[p.pos+1:end]))
			}
			if idx > 65536 {
				return fmt.Errorf("index of %d is greater than maximum supported index of 65536", idx)
			}
			path = append(path, pathElem{index: idx, isIdx: true})
			p.pos = end + 1
			continue
		case ',':
			if len(path) == 0 && len(key) == 0 {
				p.pos++
				continue
			}
			return fmt.Errorf("key %q has no value (cannot end with ,)", string(key))
		case '=':
			if len(key) > 0 {
				path = append(path, pathElem{key: string(key)})
			}
			if len(path) == 0 {
				return fmt.Errorf("key is empty")
			}
			p.pos++
			val, err := p.value()
			if err != nil {
				return err
			}
			return setPath(dst, path, val)
		default:
			key = append(key, c)
			p.pos++
		}
	}
}

// value parses a scalar or a {a,b} list, consuming the terminating comma.
func (p *setParser) value() (interface{}, error) {
	if p.pos < len(p.s) && p.s[p.pos] == '{' && p.reader == nil {
		p.pos++
		list := []interface{}{}
		for {
			raw, stop := p.scalar(",}")
			list = append(list, p.typed(raw))
			if stop == '}' {
				break
			}
			if stop == 0 {
				return nil, fmt.Errorf("list must terminate with '}'")
			}
		}
		if p.pos < len(p.s) {
			if p.s[p.pos] != ',' {
				return nil, fmt.Errorf("list must be followed by ','")
			}
			p.pos++
		}
		return list, nil
	}
	raw, _ := p.scalar(",")
	if p.reader != nil {
		return p.reader(raw)
	}
	return p.typed(raw), nil
}

// scalar reads up to (and consumes) one of the stop runes, honouring backslash escapes.
func (p *setParser) scalar(stops string) (string, rune) {
	var out []rune
	for p.pos < len(p.s) {
		c := p.s[p.pos]
		if c == '\\' && p.pos+1 < len(p.s) {
			out = append(out, p.s[p.pos+1])
			p.pos += 2
			continue
		}
		p.pos++
		if strings.ContainsRune(stops, c) {
			return string(out), c
		}
		out = append(out, c)
	}
	return string(out), 0
}

// typed is Helm's strvals typedVal.
func (p *setParser) typed(v string) interface{} {
	if p.st {
		return v
	}
	switch {
	case strings.EqualFold(v, "true"):
		return true
	case strings.EqualFold(v, "false"):
		return false
	case strings.EqualFold(v, "null"):
		return nil
	case v == "0":
		return int64(0)
	}
	if len(v) != 0 && v[0] != '0' {
		if iv, err := strconv.ParseInt(v, 10, 64); err == nil {
			return iv
		}
	}
	return v
}

func setPath(dst map[string]interface{}, path []pathElem, val interface{}) error {
	if path[0].isIdx {
		return fmt.Errorf("a list index cannot start a key")
	}
	return setIn(dst, path, val, func(interface{}) {})
}

// setIn sets val at path inside container c; replace swaps c in its parent when it must change shape.
func setIn(c interface{}, path []pathElem, val interface{}, replace func(interface{})) error {
	el := path[0]
	last := len(path) == 1
	if el.isIdx {
		list, ok := c.([]interface{})
		if !ok {
			list = []interface{}{}
		}
		for len(list) <= el.index {
			list = append(list, nil)
		}
		replace(list)
		if last {
			list[el.index] = val
			return nil
		}
		return setIn(list[el.index], path[1:], val, func(n interface{}) { list[el.index] = n })
	}
	m, ok := c.(map[string]interface{})
	if !ok {
		m = map[string]interface{}{}
		replace(m)
	}
	if last {
		m[el.key] = val
		return nil
	}
	next := m[el.key]
	if !path[1].isIdx {
		if _, ok := next.(map[string]interface{}); !ok {
			next = map[string]interface{}{}
			m[el.key] = next
		}
	}
	return setIn(next, path[1:], val, func(n interface{}) { m[el.key] = n })
}

func sortedKeys(m map[string]interface{}) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
