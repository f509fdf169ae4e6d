{{/*
Ingress: the service ports only from the allowed pods of the same release (or from anywhere for the
public gateway), and the metrics port only from the monitoring namespace (and the components in
networkPolicy.ingress.metricsFromComponents: the console reads drift's PSI there).
Egress (when global.networkPolicy.egress.enabled): DNS, the pods of the same release, and each
configured destination (Kafka, Redis, PostgreSQL, the OTLP collector) by port and optional peers,
and MLflow's tracking server (global.mlflow.egress) for a chart that talks to it.
*/}}
{{- define "alama-lib.networkpolicy" -}}
{{- if include "alama-lib.enabled" (dict "local" .Values.networkPolicy "global" .Values.global.networkPolicy) }}
{{- $g := .Values.global.networkPolicy -}}
{{- $egress := $g.egress | default dict -}}
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: {{ include "alama-lib.fullname" . }}
  labels:
    {{- include "alama-lib.labels" . | nindent 4 }}
spec:
  podSelector:
    matchLabels:
      {{- include "alama-lib.selectorLabels" . | nindent 6 }}
  policyTypes:
    - Ingress
    {{- if $egress.enabled }}
    - Egress
    {{- end }}
  ingress:
    {{- if .Values.service.ports }}
    - ports:
        {{- range .Values.service.ports }}
        - port: {{ .name }}
          protocol: {{ .protocol | default "TCP" }}
        {{- end }}
      {{- if not .Values.networkPolicy.ingress.fromAnywhere }}
      from:
        {{- range .Values.networkPolicy.ingress.fromComponents | default (list "") }}
        - podSelector:
            matchLabels:
              app.kubernetes.io/instance: {{ $.Release.Name }}
              {{- if . }}
              app.kubernetes.io/name: {{ . }}
              {{- else }}
              app.kubernetes.io/part-of: alama
              {{- end }}
        {{- end }}
      {{- end }}
    {{- end }}
    - ports:
        - port: {{ include "alama-lib.metricsPortName" . }}
          protocol: TCP
      from:
        - namespaceSelector:
            matchLabels:
              kubernetes.io/metadata.name: {{ $g.monitoringNamespace | default "monitoring" }}
        {{- range .Values.networkPolicy.ingress.metricsFromComponents | default list }}
        - podSelector:
            matchLabels:
              app.kubernetes.io/instance: {{ $.Release.Name }}
              app.kubernetes.io/name: {{ . }}
        {{- end }}
  {{- if $egress.enabled }}
  egress:
    - to:
        - namespaceSelector:
            matchLabels:
              kubernetes.io/metadata.name: {{ $egress.dns.namespace }}
          {{- with $egress.dns.podLabels }}
          podSelector:
            matchLabels:
              {{- toYaml . | nindent 14 }}
          {{- end }}
      ports:
        - port: 53
          protocol: UDP
        - port: 53
          protocol: TCP
    - to:
        - podSelector:
            matchLabels:
              app.kubernetes.io/instance: {{ .Release.Name }}
              app.kubernetes.io/part-of: alama
    {{- range $name, $destination := $egress.destinations }}
    {{- if $destination.ports }}
    # {{ $name }}
    - ports:
        {{- range $destination.ports }}
        - port: {{ . }}
          protocol: TCP
        {{- end }}
      {{- with $destination.to }}
      to:
        {{- toYaml . | nindent 8 }}
      {{- end }}
    {{- end }}
    {{- end }}
    {{- if include "alama-lib.mlflowTrackingUri" . }}
    {{- $mlflow := (.Values.global.mlflow.egress | default dict) }}
    # mlflow
    - ports:
        {{- range ($mlflow.ports | default (list 5000)) }}
        - port: {{ . }}
          protocol: TCP
        {{- end }}
      {{- with $mlflow.to }}
      to:
        {{- toYaml . | nindent 8 }}
      {{- end }}
    {{- end }}
    {{- with $egress.extraRules }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  {{- end }}
{{- end }}
{{- end -}}
