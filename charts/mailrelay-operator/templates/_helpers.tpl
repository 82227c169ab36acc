{{/*
Names and labels. Every object carries the standard app.kubernetes.io/* labels and
helm.sh/chart; selectors use only the stable subset (name, instance, component), because
a Deployment's selector is immutable and must not change with the chart version.
*/}}

{{/* Chart name, overridable with nameOverride. */}}
{{- define "mailrelay-operator.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Object name prefix: the release name if it already contains the chart name, else release-chart. */}}
{{- define "mailrelay-operator.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/* The helm.sh/chart label value: name-version, with "+" (invalid in labels) replaced. */}}
{{- define "mailrelay-operator.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Selector labels. Call with (dict "ctx" $ "component" "operator").
*/}}
{{- define "mailrelay-operator.selectorLabels" -}}
app.kubernetes.io/name: {{ include "mailrelay-operator.name" .ctx }}
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{/*
Full label set. Call with (dict "ctx" $ "component" "operator").
*/}}
{{- define "mailrelay-operator.labels" -}}
helm.sh/chart: {{ include "mailrelay-operator.chart" .ctx }}
{{ include "mailrelay-operator.selectorLabels" . }}
app.kubernetes.io/version: {{ .ctx.Chart.AppVersion | quote }}
app.kubernetes.io/part-of: mailrelay
app.kubernetes.io/managed-by: {{ .ctx.Release.Service }}
{{- end }}

{{/* The operator's ServiceAccount name. */}}
{{- define "mailrelay-operator.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "mailrelay-operator.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* The image reference: repository[:tag][@digest]; the tag defaults to the chart's appVersion. */}}
{{- define "mailrelay-operator.image" -}}
{{- $ref := printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- if .Values.image.digest }}
{{- $ref = printf "%s@%s" $ref .Values.image.digest }}
{{- end }}
{{- $ref }}
{{- end }}

{{/* Name of the Lease the operator replicas elect a leader with. */}}
{{- define "mailrelay-operator.leaseName" -}}
{{- printf "%s-leader" (include "mailrelay-operator.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
The custom resources the chart ships in crds/, as a YAML list of
{group, plural, kind, version (the storage version)}. RBAC and the example MailRelay are
derived from the CRD files themselves, so they can never name a group or resource the
CRD does not define.
*/}}
{{- define "mailrelay-operator.customResources" -}}
{{- $out := list }}
{{- range $path, $bytes := .Files.Glob "crds/*.{yaml,yml}" }}
{{- range $doc := regexSplit "(?m)^---[ \t]*$" (toString $bytes) -1 }}
{{- $obj := fromYaml $doc }}
{{- if and (eq (toString (get $obj "kind")) "CustomResourceDefinition") (hasKey $obj "spec") }}
{{- $version := "" }}
{{- range $v := $obj.spec.versions }}
{{- if $v.storage }}{{ $version = $v.name }}{{ end }}
{{- end }}
{{- $out = append $out (dict "group" $obj.spec.group "plural" $obj.spec.names.plural "kind" $obj.spec.names.kind "version" $version) }}
{{- end }}
{{- end }}
{{- end }}
{{- toYaml $out }}
{{- end }}

{{/*
THE operator permissions, in one values-independent place: the ClusterRole (or, with
watchNamespace, the Role) renders exactly this list. test/chart/rbac.ts reads it back
from the rendered objects so it can be compared with what the operator really requests.
Why each rule exists (test/operator/rbac.test.ts compares them with the operator's real
requests; nothing here goes unused by the code):
- MailRelays: read and watch them; status is written with a PUT (update) of the status
  subresource. mailrelays/finalizers "update" is needed for ownerReferences with
  blockOwnerDeletion where the OwnerReferencesPermissionEnforcement admission plugin is
  on (e.g. OpenShift). The operator adds no finalizers and never patches a MailRelay.
- Children the operator owns: server-side apply is a PATCH, but a PATCH that creates the
  object is also authorized as "create" (the apiserver's patch handler wraps its create
  path in a create check), so apply needs get/list/watch, patch AND create. "delete": the
  operator deletes what a spec change turns off (NetworkPolicy, PDB, monitoring), and
  adopting an orphaned child (after `kubectl delete mailrelay --cascade=orphan` and a
  re-create) changes its ownerReferences, which the OwnerReferencesPermissionEnforcement
  admission plugin allows only to users who may delete the object. ConfigMaps, Services
  and StatefulSets are otherwise never deleted by the operator (the garbage collector
  removes them with their MailRelay).
- Secrets: get by name, only those a MailRelay references (credentials, TLS and DKIM keys
  are hashed into the config hash so a rotation rolls the relays; they are read again
  every minute), and create for the one the operator owns: the drain token
  <name>-drain-token (ADR 0003 R2). No list or watch: the operator keeps no cache of
  every Secret in the cluster, and cannot enumerate them. It never updates, patches or
  deletes a Secret.
- PersistentVolumeClaims: read, and patch for the spool-state annotation a scale-down puts
  on a spool it cannot vouch for (ADR 0003). Pods: read only (readiness before a
  scale-down; the relay's /drain endpoint is called over the pod network, not the API).
- Events: core/v1, created and patched (aggregated counts).
- ServiceMonitor/PrometheusRule: per-relay monitoring objects, read with a GET (no
  informer: their CRDs may not exist). Whether the CRDs exist is learnt from API
  discovery (/apis), which needs no RBAC, so no CRD read access is granted.
*/}}
{{- define "mailrelay-operator.rbacRules" -}}
{{- range $cr := include "mailrelay-operator.customResources" . | fromYamlArray }}
- apiGroups: [{{ $cr.group | quote }}]
  resources: [{{ $cr.plural | quote }}]
  verbs: [get, list, watch]
- apiGroups: [{{ $cr.group | quote }}]
  resources: [{{ printf "%s/status" $cr.plural | quote }}]
  verbs: [update]
- apiGroups: [{{ $cr.group | quote }}]
  resources: [{{ printf "%s/finalizers" $cr.plural | quote }}]
  verbs: [update]
{{- end }}
- apiGroups: [""]
  resources: [configmaps, services]
  verbs: [get, list, watch, create, patch, delete]
- apiGroups: [apps]
  resources: [statefulsets]
  verbs: [get, list, watch, create, patch, delete]
- apiGroups: [policy]
  resources: [poddisruptionbudgets]
  verbs: [get, list, watch, create, patch, delete]
- apiGroups: [networking.k8s.io]
  resources: [networkpolicies]
  verbs: [get, list, watch, create, patch, delete]
- apiGroups: [""]
  resources: [secrets]
  verbs: [get, create]
- apiGroups: [""]
  resources: [persistentvolumeclaims]
  verbs: [get, list, watch, patch]
- apiGroups: [""]
  resources: [pods]
  verbs: [get, list, watch]
- apiGroups: [""]
  resources: [events]
  verbs: [create, patch]
- apiGroups: [monitoring.coreos.com]
  resources: [servicemonitors, prometheusrules]
  verbs: [get, create, patch, delete]
- apiGroups: [keda.sh]
  resources: [scaledobjects]
  verbs: [get, create, patch, delete]
{{- end }}

{{/*
Leader election: a Role in the operator's own namespace. "create" cannot be limited by
resourceNames (the name is not known before the object exists), so it gets a rule of its
own; reading and renewing are limited to the one Lease.
*/}}
{{- define "mailrelay-operator.leaderElectionRules" -}}
- apiGroups: [coordination.k8s.io]
  resources: [leases]
  verbs: [create]
- apiGroups: [coordination.k8s.io]
  resources: [leases]
  resourceNames: [{{ include "mailrelay-operator.leaseName" . | quote }}]
  verbs: [get, update, patch]
{{- end }}

{{/* True (non-empty) when the Prometheus Operator API is served by the cluster. */}}
{{- define "mailrelay-operator.hasMonitoringApi" -}}
{{- if .Capabilities.APIVersions.Has "monitoring.coreos.com/v1" }}true{{ end }}
{{- end }}
