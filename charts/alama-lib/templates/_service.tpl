{{/* ClusterIP Service: the service ports plus the metrics port (the ServiceMonitor scrapes it). */}}
{{- define "alama-lib.service" -}}
apiVersion: v1
kind: Service
metadata:
  name: {{ include "alama-lib.fullname" . }}
  labels:
    {{- include "alama-lib.labels" . | nindent 4 }}
  {{- with .Values.service.annotations }}
  annotations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
spec:
  type: {{ .Values.service.type }}
  selector:
    {{- include "alama-lib.selectorLabels" . | nindent 4 }}
  ports:
    {{- range .Values.service.ports }}
    - name: {{ .name }}
      port: {{ .port }}
      targetPort: {{ .name }}
      protocol: {{ .protocol | default "TCP" }}
      {{- with .appProtocol }}
      appProtocol: {{ . }}
      {{- end }}
    {{- end }}
    {{- if .Values.metrics.port }}
    - name: {{ include "alama-lib.metricsPortName" . }}
      port: {{ .Values.metrics.port }}
      targetPort: {{ include "alama-lib.metricsPortName" . }}
      protocol: TCP
      appProtocol: http
    {{- end }}
{{- end -}}
