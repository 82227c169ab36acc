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
Why each rule exists:
- MailRelays: watch them, patch finalizers/metadata; status is a subresource of its own.
  mailrelays/finalizers "update" is needed for ownerReferences with blockOwnerDeletion
  where the OwnerReferencesPermissionEnforcement admission plugin is on (e.g. OpenShift).
- Children the operator owns: server-side apply is PATCH; create for the first apply of
  clients that POST; delete when a feature is turned off (NetworkPolicy, PDB, monitoring).
- Secrets: read only (referenced credentials, TLS and DKIM keys are hashed into the
  config hash so a rotation rolls the relays); never written.
- PersistentVolumeClaims and Pods: read only (spool volumes and pod readiness before a
  scale-down; the relay's /drain endpoint is called over the pod network, not the API).
- Events: both APIs, since client libraries differ in which one they write.
- ServiceMonitor/PrometheusRule: per-relay monitoring objects. Whether their CRDs exist is
  learnt from API discovery (/apis), which needs no RBAC, so no CRD read access is granted.
*/}}
{{- define "mailrelay-operator.rbacRules" -}}
{{- range $cr := include "mailrelay-operator.customResources" . | fromYamlArray }}
- apiGroups: [{{ $cr.group | quote }}]
  resources: [{{ $cr.plural | quote }}]
  verbs: [get, list, watch, patch, update]
- apiGroups: [{{ $cr.group | quote }}]
  resources: [{{ printf "%s/status" $cr.plural | quote }}]
  verbs: [get, patch, update]
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
  resources: [secrets, persistentvolumeclaims, pods]
  verbs: [get, list, watch]
- apiGroups: [""]
  resources: [events]
  verbs: [create, patch]
- apiGroups: [events.k8s.io]
  resources: [events]
  verbs: [create, patch]
- apiGroups: [monitoring.coreos.com]
  resources: [servicemonitors, prometheusrules]
  verbs: [get, list, watch, create, patch, delete]
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
