package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"

	"github.com/Masterminds/semver"
	yaml "gopkg.in/yaml.v2"
)

// Maintainer is one entry of Chart.yaml's maintainers.
type Maintainer struct {
	Name  string `yaml:"name"`
	Email string `yaml:"email"`
	URL   string `yaml:"url"`
}

// Dependency is one entry of Chart.yaml's dependencies.
type Dependency struct {
	Name         string        `yaml:"name"`
	Version      string        `yaml:"version"`
	Repository   string        `yaml:"repository"`
	Condition    string        `yaml:"condition"`
	Tags         []string      `yaml:"tags"`
	Enabled      bool          `yaml:"enabled"`
	ImportValues []interface{} `yaml:"import-values"`
	Alias        string        `yaml:"alias"`
}

// Metadata is .Chart: Chart.yaml with Helm's capitalised field names.
type Metadata struct {
	Name         string            `yaml:"name"`
	Home         string            `yaml:"home"`
	Sources      []string          `yaml:"sources"`
	Version      string            `yaml:"version"`
	Description  string            `yaml:"description"`
	Keywords     []string          `yaml:"keywords"`
	Maintainers  []*Maintainer     `yaml:"maintainers"`
	Icon         string            `yaml:"icon"`
	APIVersion   string            `yaml:"apiVersion"`
	Condition    string            `yaml:"condition"`
	Tags         string            `yaml:"tags"`
	AppVersion   string            `yaml:"appVersion"`
	Deprecated   bool              `yaml:"deprecated"`
	Annotations  map[string]string `yaml:"annotations"`
	KubeVersion  string            `yaml:"kubeVersion"`
	Dependencies []*Dependency     `yaml:"dependencies"`
	Type         string            `yaml:"type"`
}

// File is one file of the chart, its name relative to the chart root with '/' separators.
type File struct {
	Name string
	Data []byte
}

// Chart is a chart directory loaded the way Helm's loader.LoadDir does.
type Chart struct {
	Metadata  *Metadata
	Values    map[string]interface{}
	Schema    []byte
	Templates []*File
	Files     []*File
}

// loadChart reads a chart directory, honouring .helmignore.
func loadChart(dir string) (*Chart, error) {
	fi, err := os.Stat(dir)
	if err != nil {
		return nil, err
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("%s is not a chart directory (packaged charts are not supported)", dir)
	}
	rules, err := loadIgnore(filepath.Join(dir, ".helmignore"))
	if err != nil {
		return nil, err
	}
	var files []*File
	if err := walk(dir, "", rules, &files); err != nil {
		return nil, err
	}
	c := &Chart{Values: map[string]interface{}{}}
	var chartYAML []byte
	for _, f := range files {
		switch {
		case f.Name == "Chart.yaml":
			chartYAML = f.Data
		case f.Name == "values.yaml":
			v, err := readValues(f.Data)
			if err != nil {
				return nil, fmt.Errorf("cannot load values.yaml: %v", err)
			}
			c.Values = v
		case f.Name == "values.schema.json":
			c.Schema = f.Data
		case f.Name == "requirements.yaml" || f.Name == "requirements.lock" || f.Name == "Chart.lock":
			// dependency bookkeeping; subcharts themselves are rejected below
		case strings.HasPrefix(f.Name, "templates/"):
			c.Templates = append(c.Templates, f)
		case strings.HasPrefix(f.Name, "charts/"):
			return nil, fmt.Errorf("subcharts are not supported by helm-render (found %s)", f.Name)
		default:
			c.Files = append(c.Files, f)
		}
	}
	if chartYAML == nil {
		return nil, errors.New("Chart.yaml file is missing")
	}
	md, err := parseMetadata(chartYAML)
	if err != nil {
		return nil, fmt.Errorf("cannot load Chart.yaml: %v", err)
	}
	if err := md.validate(); err != nil {
		return nil, fmt.Errorf("validation: %v", err)
	}
	if len(md.Dependencies) > 0 {
		return nil, errors.New("chart dependencies (subcharts) are not supported by helm-render")
	}
	c.Metadata = md
	return c, nil
}

// parseMetadata decodes Chart.yaml; scalar fields such as a numeric appVersion become strings.
func parseMetadata(data []byte) (*Metadata, error) {
	var raw map[string]interface{}
	if err := yaml.Unmarshal(data, &raw); err != nil {
		return nil, err
	}
	for _, k := range []string{"name", "version", "appVersion", "kubeVersion", "description", "type", "apiVersion", "icon", "home"} {
		if v, ok := raw[k]; ok && v != nil {
			if _, isStr := v.(string); !isStr {
				raw[k] = fmt.Sprint(v)
			}
		}
	}
	norm, err := yaml.Marshal(raw)
	if err != nil {
		return nil, err
	}
	md := &Metadata{}
	if err := yaml.Unmarshal(norm, md); err != nil {
		return nil, err
	}
	return md, nil
}

func (md *Metadata) validate() error {
	if md.APIVersion == "" {
		return errors.New("chart.metadata.apiVersion is required")
	}
	if md.Name == "" {
		return errors.New("chart.metadata.name is required")
	}
	if md.Version == "" {
		return errors.New("chart.metadata.version is required")
	}
	if _, err := semver.StrictNewVersion(md.Version); err != nil {
		return fmt.Errorf("chart.metadata.version %q is invalid", md.Version)
	}
	if md.Type != "" && md.Type != "application" && md.Type != "library" {
		return errors.New("chart.metadata.type must be application or library")
	}
	return nil
}

// walk collects the chart's files (following symlinks) in lexical order.
func walk(root, rel string, rules *ignoreRules, out *[]*File) error {
	entries, err := os.ReadDir(filepath.Join(root, filepath.FromSlash(rel)))
	if err != nil {
		return err
	}
	names := make([]string, 0, len(entries))
	for _, e := range entries {
		names = append(names, e.Name())
	}
	sort.Strings(names)
	for _, name := range names {
		r := path.Join(rel, name)
		full := filepath.Join(root, filepath.FromSlash(r))
		fi, err := os.Stat(full)
		if err != nil {
			return err
		}
		if rules.ignore(r, fi.IsDir()) {
			continue
		}
		if fi.IsDir() {
			if err := walk(root, r, rules, out); err != nil {
				return err
			}
			continue
		}
		if !fi.Mode().IsRegular() {
			return fmt.Errorf("cannot load irregular file %s as it has file mode type bits set", r)
		}
		data, err := os.ReadFile(full)
		if err != nil {
			return err
		}
		*out = append(*out, &File{Name: r, Data: data})
	}
	return nil
}

// ---- .helmignore, as Helm's pkg/ignore implements it ----

type ignorePattern struct {
	raw     string
	negate  bool
	mustDir bool
	match   func(name string) bool
}

type ignoreRules struct{ patterns []*ignorePattern }

func loadIgnore(file string) (*ignoreRules, error) {
	r := &ignoreRules{}
	data, err := os.ReadFile(file)
	if err != nil && !os.IsNotExist(err) {
		return nil, err
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		if err := r.parseRule(sc.Text()); err != nil {
			return nil, err
		}
	}
	// Helm's AddDefaults: hidden files inside templates/ are never templates.
	if err := r.parseRule("templates/.?*"); err != nil {
		return nil, err
	}
	return r, nil
}

func (r *ignoreRules) parseRule(rule string) error {
	rule = strings.TrimSpace(rule)
	if rule == "" || strings.HasPrefix(rule, "#") {
		return nil
	}
	if strings.Contains(rule, "**") {
		return errors.New(".helmignore: double-star (**) syntax is not supported")
	}
	if _, err := filepath.Match(rule, "abc"); err != nil {
		return err
	}
	p := &ignorePattern{raw: rule}
	if strings.HasPrefix(rule, "!") {
		p.negate = true
		rule = rule[1:]
	}
	if strings.HasSuffix(rule, "/") {
		p.mustDir = true
		rule = strings.TrimSuffix(rule, "/")
	}
	switch {
	case strings.HasPrefix(rule, "/"):
		rule = strings.TrimPrefix(rule, "/")
		p.match = func(n string) bool { ok, _ := filepath.Match(rule, n); return ok }
	case strings.Contains(rule, "/"):
		p.match = func(n string) bool { ok, _ := filepath.Match(rule, n); return ok }
	default:
		p.match = func(n string) bool { ok, _ := filepath.Match(rule, path.Base(n)); return ok }
	}
	r.patterns = append(r.patterns, p)
	return nil
}

func (r *ignoreRules) ignore(name string, isDir bool) bool {
	if name == "" || name == "." {
		return false
	}
	for _, p := range r.patterns {
		if p.negate {
			if p.mustDir && !isDir {
				return true
			}
			if !p.match(name) {
				return true
			}
			continue
		}
		if p.mustDir && !isDir {
			continue
		}
		if p.match(name) {
			return true
		}
	}
	return false
}

// crdObjects returns the chart's crds/ files that Helm treats as CRDs.
func (c *Chart) crdObjects() []*File {
	var out []*File
	for _, f := range c.Files {
		if strings.HasPrefix(f.Name, "crds/") {
			switch path.Ext(f.Name) {
			case ".yaml", ".yml", ".json":
				out = append(out, f)
			}
		}
	}
	return out
}
