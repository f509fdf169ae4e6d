{{/* Prometheus Operator ServiceMonitor for the metrics port; rendered only when enabled. */}}
{{- define "alama-lib.servicemonitor" -}}
{{- if include "alama-lib.enabled" (dict "local" .Values.serviceMonitor "global" .Values.global.serviceMonitor) }}
{{- $g := .Values.global.serviceMonitor -}}
apiVersion: monitoring.coreos.com/v1
kind: ServiceMonitor
metadata:
  name: {{ include "alama-lib.fullname" . }}
  labels:
    {{- include "alama-lib.labels" . | nindent 4 }}
    {{- with $g.labels }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
spec:
  selector:
    matchLabels:
      {{- include "alama-lib.selectorLabels" . | nindent 6 }}
  endpoints:
    - port: {{ include "alama-lib.metricsPortName" . }}
      path: {{ .Values.metrics.path | default "/metrics" }}
      interval: {{ $g.interval | default "30s" }}
      scrapeTimeout: {{ $g.scrapeTimeout | default "10s" }}
{{- end }}
{{- end -}}
