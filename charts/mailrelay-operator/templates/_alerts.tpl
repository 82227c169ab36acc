{{/*
The fleet's alerting rules, as a Prometheus rule file body (a "groups:" list). The
PrometheusRule template wraps it; deploy/static/prometheus-rules.yaml is the same text
rendered with the defaults, for a Prometheus without the Prometheus Operator.

Label conventions (docs/monitoring.md): relay series carry "namespace" and "mailrelay"
(the MailRelay's name, copied from the relay pods' app.kubernetes.io/instance label by
the relay ServiceMonitor) and "pod". Relay alerts aggregate by (namespace, mailrelay), so
one page names one MailRelay. Operator alerts aggregate by the operator's namespace.
Only metrics declared in relay/metrics.ts and operator/metrics.ts are used (a test checks).
*/}}

{{/*
One alerting rule. Call with (dict "root" $ "name" AlertName "cfg" .Values.alerts.x
"expr" PromQL "summary" text "description" text). summary and description are passed as
raw strings so that Prometheus' own {{ $labels.x }} templating survives Helm's.
*/}}
{{- define "mailrelay-operator.alertRule" -}}
- alert: {{ .name }}
  expr: |-
    {{- .expr | trim | nindent 4 }}
  {{- if and .cfg.for (ne (toString .cfg.for) "0") }}
  for: {{ .cfg.for }}
  {{- end }}
  labels:
    severity: {{ .cfg.severity }}
    {{- with .root.Values.alerts.labels }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  annotations:
    summary: {{ .summary | quote }}
    description: {{ .description | quote }}
    runbook_url: {{ printf "%s/%s.md" .root.Values.alerts.runbookBaseUrl .name | quote }}
{{- end }}

{{/* Groups with at least one enabled alert; Prometheus rejects a group without rules. */}}
{{- define "mailrelay-operator.alertGroups" -}}
{{- $relays := include "mailrelay-operator.relayAlertRules" . | trim }}
{{- $operator := include "mailrelay-operator.operatorAlertRules" . | trim }}
{{- if $relays }}
- name: mailrelay.relays
  rules:
    {{- $relays | nindent 4 }}
{{- end }}
{{- if $operator }}
- name: mailrelay.operator
  rules:
    {{- $operator | nindent 4 }}
{{- end }}
{{- end }}

{{- define "mailrelay-operator.relayAlertRules" -}}
{{- $a := .Values.alerts }}
  {{- with $a.rcpt552Mailbox }}{{ if .enabled }}
  {{- include "mailrelay-operator.alertRule" (dict "root" $ "name" "MailRelayRecipientMailbox552High" "cfg" .
    "expr" (printf `
(
  sum by (namespace, mailrelay) (rate(mailrelay_rcpt_552_total{class="mailbox"}[10m]))
  /
  sum by (namespace, mailrelay) (rate(mailrelay_smtp_replies_total{command="rcpt"}[10m]))
) > %v
and
sum by (namespace, mailrelay) (increase(mailrelay_rcpt_552_total{class="mailbox"}[10m])) >= %v` .ratio .minEvents)
    "summary" `MailRelay {{ $labels.namespace }}/{{ $labels.mailrelay }}: {{ $value | humanizePercentage }} of recipients refused with 552 (mailbox)`
    "description" `{{ $value | humanizePercentage }} of RCPT replies in the last 10 minutes were 552 refusals read as a mailbox problem (e.g. 5.2.2 over quota). These recipients bounce or wait for retry according to delivery.overQuotaPolicy. A surge usually means one destination is refusing mail, or mail is going to stale addresses.`) | nindent 0 }}
  {{- end }}{{ end }}
  {{- with $a.rcpt552TooManyRecipients }}{{ if .enabled }}
  {{- include "mailrelay-operator.alertRule" (dict "root" $ "name" "MailRelayTooManyRecipients552" "cfg" .
    "expr" (printf `
sum by (namespace, mailrelay) (increase(mailrelay_rcpt_552_total{class="too_many_recipients"}[30m])) > %v` .events)
    "summary" `MailRelay {{ $labels.namespace }}/{{ $labels.mailrelay }}: {{ $value | humanize }} "too many recipients" 552 replies in 30 minutes`
    "description" `Remote servers answered RCPT with 552 after accepting earlier recipients of the same transaction (RFC 5321 4.5.3.1.10: too many recipients). The relay defers those recipients and learns a lower per-destination limit, so this should stop by itself. If it does not, the learned limits are not sticking or delivery.maxRecipientsPerTransaction is far above what a destination accepts.`) | nindent 0 }}
  {{- end }}{{ end }}
  {{- with $a.partialDeliveries }}{{ if .enabled }}
  {{- include "mailrelay-operator.alertRule" (dict "root" $ "name" "MailRelayPartialDeliveriesHigh" "cfg" .
    "expr" (printf `
(
  sum by (namespace, mailrelay) (rate(mailrelay_partial_deliveries_total[15m]))
  /
  sum by (namespace, mailrelay) (rate(mailrelay_delivery_attempts_total[15m]))
) > %v
and
sum by (namespace, mailrelay) (increase(mailrelay_partial_deliveries_total[15m])) >= %v` .ratio .minEvents)
    "summary" `MailRelay {{ $labels.namespace }}/{{ $labels.mailrelay }}: {{ $value | humanizePercentage }} of delivery transactions were partial`
    "description" `{{ $value | humanizePercentage }} of delivery transactions in the last 15 minutes were accepted for some recipients and refused for others. The refused recipients are retried or bounced one by one; the accepted ones must not be sent again. A high share points at recipient limits or per-mailbox refusals at one destination.`) | nindent 0 }}
  {{- end }}{{ end }}
  {{- with $a.deliveriesFailing }}{{ if .enabled }}
  {{- include "mailrelay-operator.alertRule" (dict "root" $ "name" "MailRelayDeliveriesFailing" "cfg" .
    "expr" (printf `
(
  sum by (namespace, mailrelay) (rate(mailrelay_delivery_attempts_total{result=~"deferred|failed"}[15m]))
  /
  sum by (namespace, mailrelay) (rate(mailrelay_delivery_attempts_total[15m]))
) > %v` .ratio)
    "summary" `MailRelay {{ $labels.namespace }}/{{ $labels.mailrelay }}: {{ $value | humanizePercentage }} of delivery attempts fail`
    "description" `{{ $value | humanizePercentage }} of the delivery attempts in the last 15 minutes delivered to nobody: deferred or refused, including attempts that could not connect at all (a smarthost or MX host that refuses connections, DNS, outbound port 25 blocked). Mail waits in the spool and is retried until delivery.retry.maxAge.`) | nindent 0 }}
  {{- end }}{{ end }}
  {{- with $a.retryStorm }}{{ if .enabled }}
  {{- include "mailrelay-operator.alertRule" (dict "root" $ "name" "MailRelayRetryStorm" "cfg" .
    "expr" (printf `
(
  sum by (namespace, mailrelay) (rate(mailrelay_retries_total[10m]))
  /
  sum by (namespace, mailrelay) (rate(mailrelay_recipients_total[10m]))
) > %v
and
sum by (namespace, mailrelay) (rate(mailrelay_retries_total[10m])) > %v` .ratio .minRatePerSecond)
    "summary" `MailRelay {{ $labels.namespace }}/{{ $labels.mailrelay }}: {{ printf "%.2f" $value }} retries per recipient outcome`
    "description" `Recipients are put back for a later attempt {{ printf "%.2f" $value }} times per recipient outcome (10 minute window). Look at mailrelay_retries_total by reason: connection, timeout and tls point at the network or a destination that is down; temporary_reply at remote 4xx replies; too_many_recipients at recipient limits.`) | nindent 0 }}
  {{- end }}{{ end }}
  {{- with $a.queueGrowing }}{{ if .enabled }}
  {{- include "mailrelay-operator.alertRule" (dict "root" $ "name" "MailRelayQueueGrowing" "cfg" .
    "expr" (printf `
sum by (namespace, mailrelay) (predict_linear(mailrelay_queue_messages[30m], %v)) > %v
and
sum by (namespace, mailrelay) (deriv(mailrelay_queue_messages[30m])) > 0` .horizonSeconds .messages)
    "summary" `MailRelay {{ $labels.namespace }}/{{ $labels.mailrelay }}: spool predicted to hold {{ $value | humanize }} messages soon`
    "description" `The spool has grown steadily over the last 30 minutes; at this rate it will hold {{ $value | humanize }} messages. Mail arrives faster than it leaves: a destination is slow or down, delivery concurrency is too low, or relays are missing.`) | nindent 0 }}
  {{- end }}{{ end }}
  {{- with $a.oldestMessage }}{{ if .enabled }}
  {{- include "mailrelay-operator.alertRule" (dict "root" $ "name" "MailRelayOldestMessageTooOld" "cfg" .
    "expr" (printf `
max by (namespace, mailrelay) (mailrelay_queue_oldest_message_age_seconds) > %v` .ageSeconds)
    "summary" `MailRelay {{ $labels.namespace }}/{{ $labels.mailrelay }}: a message has been spooled for {{ $value | humanizeDuration }}`
    "description" `The oldest message in a spool of this MailRelay is {{ $value | humanizeDuration }} old. It keeps being retried until delivery.retry.maxAge, then bounces. Something has been failing for hours: a destination, the smarthost, DNS or outbound port 25.`) | nindent 0 }}
  {{- end }}{{ end }}
  {{- with $a.bounces }}{{ if .enabled }}
  {{- include "mailrelay-operator.alertRule" (dict "root" $ "name" "MailRelayBouncesAboveNormal" "cfg" .
    "expr" (printf `
(
  sum by (namespace, mailrelay) (rate(mailrelay_recipients_total{outcome="bounced"}[30m]))
  /
  sum by (namespace, mailrelay) (rate(mailrelay_recipients_total[30m]))
) > %v
and
(
  sum by (namespace, mailrelay) (rate(mailrelay_recipients_total{outcome="bounced"}[30m]))
  /
  sum by (namespace, mailrelay) (rate(mailrelay_recipients_total[30m]))
) > %v * (
  sum by (namespace, mailrelay) (rate(mailrelay_recipients_total{outcome="bounced"}[1d]))
  /
  sum by (namespace, mailrelay) (rate(mailrelay_recipients_total[1d]))
)` .ratio .baselineFactor)
    "summary" `MailRelay {{ $labels.namespace }}/{{ $labels.mailrelay }}: {{ $value | humanizePercentage }} of recipients bounced`
    "description" `{{ $value | humanizePercentage }} of recipient outcomes in the last 30 minutes were bounces (permanent failures), well above this MailRelay's share over the last day. A sender may be mailing a bad list, or a destination started refusing this relay (blocklisting, SPF/DKIM/DMARC, reputation).`) | nindent 0 }}
  {{- end }}{{ end }}
  {{- with $a.smarthostTls }}{{ if .enabled }}
  {{- include "mailrelay-operator.alertRule" (dict "root" $ "name" "MailRelaySmarthostTlsFailing" "cfg" .
    "expr" (printf `
sum by (namespace, mailrelay) (increase(mailrelay_tls_sessions_total{policy="smarthost", result!="success"}[15m])) >= %v
unless
sum by (namespace, mailrelay) (increase(mailrelay_tls_sessions_total{policy="smarthost", result="success"}[15m])) > 0` .minFailures)
    "summary" `MailRelay {{ $labels.namespace }}/{{ $labels.mailrelay }}: TLS to the smarthost fails ({{ printf "%.0f" $value }} failed sessions in 15m, none succeeded)`
    "description" `Every connection to the smarthost in the last 15 minutes failed its TLS check (certificate expired, not trusted, wrong name, or no STARTTLS), so no mail leaves and nothing is sent to it, credentials included. The mail is kept and retried. mailrelay_tls_sessions_total{policy="smarthost"} by result says which check fails; the relay log names the host and the reason.`) | nindent 0 }}
  {{- end }}{{ end }}
  {{- with $a.inboundTempfail }}{{ if .enabled }}
  {{- include "mailrelay-operator.alertRule" (dict "root" $ "name" "MailRelayInboundTempfail" "cfg" .
    "expr" (printf `
sum by (namespace, mailrelay) (rate(mailrelay_inbound_messages_total{result="tempfail"}[5m])) > %v` .ratePerSecond)
    "summary" `MailRelay {{ $labels.namespace }}/{{ $labels.mailrelay }}: the spool is refusing mail ({{ printf "%.3g" $value }} messages/s tempfailed)`
    "description" `Clients get a 4xx reply because the spool could not store their message durably (volume full, I/O error). Well-behaved clients retry, but mail is piling up at the senders.`) | nindent 0 }}
  {{- end }}{{ end }}
  {{- with $a.drainingTooLong }}{{ if .enabled }}
  {{- include "mailrelay-operator.alertRule" (dict "root" $ "name" "MailRelayDrainingTooLong" "cfg" .
    "expr" `
max by (namespace, mailrelay, pod) (mailrelay_draining) == 1`
    "summary" `MailRelay {{ $labels.namespace }}/{{ $labels.mailrelay }}: pod {{ $labels.pod }} has been draining for a long time`
    "description" `Relay pod {{ $labels.namespace }}/{{ $labels.pod }} refuses new mail and is still delivering its queue. A scale-down waits for it to empty (docs/adr/0003); messages it cannot deliver keep it draining until they expire or are handled with mailrelay queue.`) | nindent 0 }}
  {{- end }}{{ end }}
  {{- with $a.relayDown }}{{ if .enabled }}
  {{- include "mailrelay-operator.alertRule" (dict "root" $ "name" "MailRelayTargetDown" "cfg" .
    "expr" `
up{mailrelay!=""} == 0`
    "summary" `MailRelay {{ $labels.namespace }}/{{ $labels.mailrelay }}: pod {{ $labels.pod }} cannot be scraped`
    "description" `Prometheus has not been able to scrape relay pod {{ $labels.namespace }}/{{ $labels.pod }} ({{ $labels.instance }}). The pod is down, crash-looping, not ready, or blocked by a NetworkPolicy. Mail in its spool waits until it comes back.`) | nindent 0 }}
  {{- end }}{{ end }}
  {{- with $a.relaysNotReady }}{{ if .enabled }}
  {{- include "mailrelay-operator.alertRule" (dict "root" $ "name" "MailRelayNotReady" "cfg" .
    "expr" `
sum by (namespace) (max by (namespace, ready) (mailrelay_operator_relays{ready!="True"})) > 0`
    "summary" `{{ $value | humanize }} MailRelays are not Ready`
    "description" `The operator in namespace {{ $labels.namespace }} reports {{ $value | humanize }} MailRelays whose Ready condition is False or Unknown. Run "kubectl get mailrelays -A" and read the conditions of the ones not Ready.`) | nindent 0 }}
  {{- end }}{{ end }}
{{- end }}

{{- define "mailrelay-operator.operatorAlertRules" -}}
{{- $a := .Values.alerts }}
  {{- with $a.operatorNoLeader }}{{ if .enabled }}
  {{- include "mailrelay-operator.alertRule" (dict "root" $ "name" "MailRelayOperatorNoLeader" "cfg" .
    "expr" `
max by (namespace) (mailrelay_operator_leader) < 1
or
absent(mailrelay_operator_leader)`
    "summary" `The mailrelay operator has no leader`
    "description" `No mailrelay operator replica holds the leader Lease, or Prometheus scrapes no operator at all. Relays keep delivering, but MailRelay changes, scale-downs and status updates wait until a leader is back.`) | nindent 0 }}
  {{- end }}{{ end }}
  {{- with $a.operatorMultipleLeaders }}{{ if .enabled }}
  {{- include "mailrelay-operator.alertRule" (dict "root" $ "name" "MailRelayOperatorMultipleLeaders" "cfg" .
    "expr" `
sum by (namespace) (mailrelay_operator_leader) > 1`
    "summary" `{{ $value | humanize }} mailrelay operator replicas in {{ $labels.namespace }} believe they are the leader`
    "description" `More than one operator replica in namespace {{ $labels.namespace }} reports holding the leader Lease. They may fight over the same objects. Clock skew between nodes, or two installs sharing a Lease, can cause this.`) | nindent 0 }}
  {{- end }}{{ end }}
  {{- with $a.operatorReconcileErrors }}{{ if .enabled }}
  {{- include "mailrelay-operator.alertRule" (dict "root" $ "name" "MailRelayOperatorReconcileErrors" "cfg" .
    "expr" (printf `
sum by (namespace) (rate(mailrelay_operator_reconcile_total{result="error"}[5m])) > %v` .ratePerSecond)
    "summary" `The mailrelay operator in {{ $labels.namespace }} keeps failing to reconcile`
    "description" `MailRelay reconciles in namespace {{ $labels.namespace }} have failed at {{ printf "%.3g" $value }}/s for a while. Failed reconciles are retried with backoff; while they fail, MailRelay changes are not applied. The operator logs and the MailRelays' events say why.`) | nindent 0 }}
  {{- end }}{{ end }}
{{- end }}
