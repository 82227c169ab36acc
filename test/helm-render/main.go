// Command helm-render is a small stand-in for `helm template`: it renders a
// chart directory with Helm 3's template engine semantics (sprig functions,
// include/tpl/required, .Files, .Capabilities, values coalescing, schema
// validation, manifest sorting) without needing a helm binary or a cluster.
//
// Usage:
//
//	helm-render [RELEASE] CHART_DIR [-n NS] [-f values.yaml]... [--set k=v]...
//	    [--set-string k=v]... [--set-file k=path]... [--kube-version V]
//	    [-a|--api-versions G/V]... [--include-crds] [--skip-tests] [--no-hooks] [--is-upgrade]
//	    [-s|--show-only templates/x.yaml]... [--notes]
package main

import (
	"bytes"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
)

type options struct {
	releaseName  string
	chartDir     string
	namespace    string
	valueFiles   []string
	sets         []string
	setStrings   []string
	setFiles     []string
	kubeVersion  string
	apiVersions  []string
	includeCRDs  bool
	skipTests    bool
	noHooks      bool
	isUpgrade    bool
	notes        bool
	showOnly     []string
	printWarning func(string)
}

const usage = `usage: helm-render [RELEASE] CHART_DIR [flags]
  -n, --namespace NS        release namespace (default "default")
  -f, --values FILE         values file (repeatable, later files win)
      --set K=V             set values (repeatable; a.b=1,c[0]=x,d={x,y})
      --set-string K=V      like --set but values stay strings
      --set-file K=PATH     set a value to a file's contents
      --kube-version V      Kubernetes version for .Capabilities (default ` + defaultKubeVersion + `)
  -a, --api-versions G/V    extra API versions for .Capabilities.APIVersions (repeatable)
      --include-crds        prepend the chart's crds/ files
      --skip-tests          leave out test hooks
      --no-hooks            leave out all hooks
      --is-upgrade          set .Release.IsUpgrade instead of .Release.IsInstall
  -s, --show-only PATH      only output manifests from this template (repeatable)
      --notes               print the rendered NOTES.txt instead of manifests
`

func parseArgs(args []string) (*options, error) {
	o := &options{namespace: "default", kubeVersion: defaultKubeVersion}
	var positional []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		name, val, hasVal := a, "", false
		if strings.HasPrefix(a, "--") {
			if eq := strings.IndexByte(a, '='); eq >= 0 {
				name, val, hasVal = a[:eq], a[eq+1:], true
			}
		} else if strings.HasPrefix(a, "-") && len(a) > 2 && a != "--" {
			name, val, hasVal = a[:2], strings.TrimPrefix(a[2:], "="), true
		}
		next := func() (string, error) {
			if hasVal {
				return val, nil
			}
			if i+1 >= len(args) {
				return "", fmt.Errorf("flag %s needs a value", name)
			}
			i++
			return args[i], nil
		}
		var err error
		var v string
		switch name {
		case "-n", "--namespace":
			o.namespace, err = next()
		case "-f", "--values":
			v, err = next()
			o.valueFiles = append(o.valueFiles, splitComma(v)...)
		case "--set":
			v, err = next()
			o.sets = append(o.sets, v)
		case "--set-string":
			v, err = next()
			o.setStrings = append(o.setStrings, v)
		case "--set-file":
			v, err = next()
			o.setFiles = append(o.setFiles, v)
		case "--kube-version":
			o.kubeVersion, err = next()
		case "-a", "--api-versions":
			v, err = next()
			o.apiVersions = append(o.apiVersions, splitComma(v)...)
		case "-s", "--show-only":
			v, err = next()
			o.showOnly = append(o.showOnly, splitComma(v)...)
		case "--include-crds":
			o.includeCRDs = true
		case "--skip-tests":
			o.skipTests = true
		case "--no-hooks":
			o.noHooks = true
		case "--is-upgrade":
			o.isUpgrade = true
		case "--notes":
			o.notes = true
		case "-h", "--help":
			return nil, fmt.Errorf("%s", usage)
		default:
			if strings.HasPrefix(a, "-") && a != "-" {
				return nil, fmt.Errorf("unknown flag %s\n%s", a, usage)
			}
			positional = append(positional, a)
		}
		if err != nil {
			return nil, err
		}
	}
	switch len(positional) {
	case 1:
		o.releaseName, o.chartDir = "release-name", positional[0]
	case 2:
		o.releaseName, o.chartDir = positional[0], positional[1]
	default:
		return nil, fmt.Errorf("expected [RELEASE] CHART_DIR\n%s", usage)
	}
	return o, nil
}

func splitComma(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// userValues merges -f files in order, then --set, --set-string and --set-file (Helm's values.Options.MergeValues).
func userValues(o *options) (map[string]interface{}, error) {
	base := map[string]interface{}{}
	for _, f := range o.valueFiles {
		data, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		cur, err := readValues(data)
		if err != nil {
			return nil, fmt.Errorf("failed to parse %s: %v", f, err)
		}
		base = mergeMaps(base, cur)
	}
	for _, s := range o.sets {
		if err := parseSet(s, base, false, nil); err != nil {
			return nil, err
		}
	}
	for _, s := range o.setStrings {
		if err := parseSet(s, base, true, nil); err != nil {
			return nil, err
		}
	}
	reader := func(p string) (interface{}, error) {
		data, err := os.ReadFile(p)
		return string(data), err
	}
	for _, s := range o.setFiles {
		if err := parseSet(s, base, false, reader); err != nil {
			return nil, err
		}
	}
	return base, nil
}

// validReleaseName is Helm's chartutil.ValidateReleaseName rule.
var validReleaseName = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`)

func run(o *options) (string, error) {
	if o.releaseName == "" || len(o.releaseName) > 53 || !validReleaseName.MatchString(o.releaseName) {
		return "", fmt.Errorf("release name %q: invalid release name, must match regex %s and the length must not be longer than 53", o.releaseName, validReleaseName.String())
	}
	ch, err := loadChart(o.chartDir)
	if err != nil {
		return "", err
	}
	if ch.Metadata.Type == "library" {
		return "", fmt.Errorf("validation: chart.metadata.type is library: library charts are not installable")
	}
	kv, err := parseKubeVersion(o.kubeVersion)
	if err != nil {
		return "", fmt.Errorf("invalid kube version %q: %v", o.kubeVersion, err)
	}
	if ch.Metadata.KubeVersion != "" && !isCompatibleRange(ch.Metadata.KubeVersion, kv.Version) {
		return "", fmt.Errorf("chart requires kubeVersion: %s which is incompatible with Kubernetes %s", ch.Metadata.KubeVersion, kv.Version)
	}
	user, err := userValues(o)
	if err != nil {
		return "", err
	}
	vals := coalesceValues(o.printWarning, ch.Values, user)
	if len(ch.Schema) > 0 {
		if err := validateAgainstSchema(ch.Schema, vals); err != nil {
			return "", fmt.Errorf("values don't meet the specifications of the schema(s) in the following chart(s):\n%s:\n%s", ch.Metadata.Name, err)
		}
	}
	caps := &Capabilities{
		KubeVersion: *kv,
		APIVersions: append(append(VersionSet{}, defaultAPIVersions...), o.apiVersions...),
		HelmVersion: BuildInfo{Version: "v3.16.0", GitTreeState: "clean", GoVersion: "helm-render"},
	}
	top := map[string]interface{}{
		"Chart":        ch.Metadata,
		"Capabilities": caps,
		"Release": map[string]interface{}{
			"Name":      o.releaseName,
			"Namespace": o.namespace,
			"Revision":  1,
			"IsUpgrade": o.isUpgrade,
			"IsInstall": !o.isUpgrade,
			"Service":   "Helm",
		},
		"Values":    Values(vals),
		"Files":     newFiles(ch.Files),
		"Subcharts": map[string]interface{}{},
	}
	chartName := ch.Metadata.Name
	basePath := path.Join(chartName, "templates")
	tpls := map[string]renderable{}
	for _, t := range ch.Templates {
		tpls[path.Join(chartName, t.Name)] = renderable{tpl: string(t.Data), vals: top, basePath: basePath}
	}
	rendered, err := render(tpls)
	if err != nil {
		return "", err
	}
	notesName := path.Join(chartName, "templates", "NOTES.txt")
	notes := rendered[notesName]
	for k := range rendered {
		if strings.HasSuffix(k, "NOTES.txt") {
			delete(rendered, k)
		}
	}
	if o.notes {
		if strings.TrimSpace(notes) == "" {
			return "", nil
		}
		return strings.TrimSpace(notes) + "\n", nil
	}
	hooks, manifests, err := sortManifests(rendered)
	if err != nil {
		return "", err
	}
	var out []manifest
	if o.includeCRDs {
		for _, crd := range ch.crdObjects() {
			out = append(out, manifest{Name: path.Join(chartName, crd.Name), Content: string(crd.Data)})
		}
	}
	out = append(out, manifests...)
	for _, h := range hooks {
		if o.noHooks || (o.skipTests && h.test) {
			continue
		}
		out = append(out, h)
	}
	if len(o.showOnly) > 0 {
		// Like helm's --show-only: shell globs matched against the path below the chart name.
		var filtered []manifest
		for _, want := range o.showOnly {
			found := false
			for _, m := range out {
				rel := strings.TrimPrefix(m.Name, chartName+"/")
				if ok, _ := filepath.Match(filepath.ToSlash(want), rel); ok {
					filtered = append(filtered, m)
					found = true
				}
			}
			if !found {
				return "", fmt.Errorf("could not find template %s in chart", want)
			}
		}
		out = filtered
	}
	var b bytes.Buffer
	for _, m := range out {
		fmt.Fprintf(&b, "---\n# Source: %s\n%s\n", m.Name, m.Content)
	}
	return b.String(), nil
}

func main() {
	o, err := parseArgs(os.Args[1:])
	if err != nil {
		fmt.Fprintln(os.Stderr, "Error:", err)
		os.Exit(2)
	}
	var warnings []string
	o.printWarning = func(w string) { warnings = append(warnings, w) }
	out, err := run(o)
	sort.Strings(warnings)
	for _, w := range warnings {
		fmt.Fprintln(os.Stderr, "coalesce.go: warning:", w)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "Error:", err)
		os.Exit(1)
	}
	fmt.Print(out)
}
