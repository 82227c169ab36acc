package main

import (
	"fmt"
	"path"
	"regexp"
	"sort"
	"strings"

	yaml "gopkg.in/yaml.v2"
)

// manifest is one YAML document of a rendered template (Helm's releaseutil.Manifest).
type manifest struct {
	Name    string
	Content string
	Kind    string
	test    bool
}

// installOrder is Helm's releaseutil.InstallOrder.
var installOrder = []string{
	"PriorityClass",
	"Namespace",
	"NetworkPolicy",
	"ResourceQuota",
	"LimitRange",
	"PodSecurityPolicy",
	"PodDisruptionBudget",
	"ServiceAccount",
	"Secret",
	"SecretList",
	"ConfigMap",
	"StorageClass",
	"PersistentVolume",
	"PersistentVolumeClaim",
	"CustomResourceDefinition",
	"ClusterRole",
	"ClusterRoleList",
	"ClusterRoleBinding",
	"ClusterRoleBindingList",
	"Role",
	"RoleList",
	"RoleBinding",
	"RoleBindingList",
	"Service",
	"DaemonSet",
	"Pod",
	"ReplicationController",
	"ReplicaSet",
	"Deployment",
	"HorizontalPodAutoscaler",
	"StatefulSet",
	"Job",
	"CronJob",
	"IngressClass",
	"Ingress",
	"APIService",
	"MutatingWebhookConfiguration",
	"ValidatingWebhookConfiguration",
}

var hookEvents = map[string]bool{
	"pre-install": true, "post-install": true, "pre-delete": true, "post-delete": true,
	"pre-upgrade": true, "post-upgrade": true, "pre-rollback": true, "post-rollback": true,
	"test": true, "test-success": true,
}

var sep = regexp.MustCompile("(?:^|\\s*\n)---\\s*")

// splitManifests is Helm's releaseutil.SplitManifests, returning documents in order.
func splitManifests(bigFile string) []string {
	var res []string
	for _, d := range sep.Split(strings.TrimSpace(bigFile), -1) {
		if d == "" {
			continue
		}
		res = append(res, strings.TrimSpace(d))
	}
	return res
}

// sortManifests splits rendered files into documents and sorts them like
// Helm's releaseutil.SortManifests: normal manifests by kind in install order,
// hooks separately.
func sortManifests(files map[string]string) (hooks, generic []manifest, err error) {
	paths := make([]string, 0, len(files))
	for p := range files {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	for _, p := range paths {
		content := files[p]
		if strings.HasPrefix(path.Base(p), "_") || strings.TrimSpace(content) == "" {
			continue
		}
		for _, doc := range splitManifests(content) {
			var raw interface{}
			if err := yaml.Unmarshal([]byte(doc), &raw); err != nil {
				return nil, nil, fmt.Errorf("YAML parse error on %s: %v", p, err)
			}
			m := manifest{Name: p, Content: doc}
			var annotations map[interface{}]interface{}
			switch head := raw.(type) {
			case nil:
			case map[interface{}]interface{}:
				if k, ok := head["kind"].(string); ok {
					m.Kind = k
				}
				if md, ok := head["metadata"].(map[interface{}]interface{}); ok {
					annotations, _ = md["annotations"].(map[interface{}]interface{})
				}
			default:
				return nil, nil, fmt.Errorf("YAML parse error on %s: error unmarshaling JSON: json: cannot unmarshal %T into Go value of type releaseutil.SimpleHead", p, raw)
			}
			hookAnn, isHook := annotations["helm.sh/hook"]
			if !isHook {
				generic = append(generic, m)
				continue
			}
			hookTypes, ok := hookAnn.(string)
			if !ok {
				return nil, nil, fmt.Errorf("YAML parse error on %s: annotation helm.sh/hook must be a string", p)
			}
			known := true
			for _, h := range strings.Split(hookTypes, ",") {
				h = strings.ToLower(strings.TrimSpace(h))
				if !hookEvents[h] {
					known = false
					break
				}
				if h == "test" || h == "test-success" {
					m.test = true
				}
			}
			if !known {
				// Helm logs and drops documents with an unknown hook type.
				continue
			}
			hooks = append(hooks, m)
		}
	}
	return sortByKind(hooks), sortByKind(generic), nil
}

func sortByKind(ms []manifest) []manifest {
	ordering := make(map[string]int, len(installOrder))
	for i, k := range installOrder {
		ordering[k] = i
	}
	sort.SliceStable(ms, func(i, j int) bool {
		kindA, kindB := ms[i].Kind, ms[j].Kind
		first, aok := ordering[kindA]
		second, bok := ordering[kindB]
		if !aok && !bok {
			if kindA != kindB {
				return kindA < kindB
			}
			return first < second
		}
		if !aok {
			return false
		}
		if !bok {
			return true
		}
		return first < second
	})
	return ms
}
