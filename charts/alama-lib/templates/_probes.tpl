{{/*
Probes from a compact spec (.Values.probes):
  type: grpc   -> native gRPC probes of grpc.health.v1 on `port` (service `grpcService`, "" = the server)
  type: http   -> httpGet `livenessPath` / `readinessPath` on `port` (a number or a port name)
  type: none   -> no probes
`startup`, `liveness` and `readiness` hold the timing fields of each probe.
*/}}
{{- define "alama-lib.probeHandler" -}}
{{- $p := .probes -}}
{{- if eq $p.type "grpc" -}}
grpc:
  port: {{ required "probes.port must be a number for gRPC probes" $p.port | int }}
  {{- with $p.grpcService }}
  service: {{ . | quote }}
  {{- end }}
{{- else if eq $p.type "http" -}}
httpGet:
  path: {{ .path }}
  port: {{ $p.port }}
{{- else -}}
{{- fail (printf "probes.type must be grpc, http or none, not %q" $p.type) -}}
{{- end -}}
{{- end -}}

{{- define "alama-lib.probes" -}}
{{- $p := .Values.probes -}}
{{- if ne $p.type "none" }}
{{- with $p.startup }}
startupProbe:
  {{- include "alama-lib.probeHandler" (dict "probes" $p "path" $p.livenessPath) | nindent 2 }}
  {{- toYaml . | nindent 2 }}
{{- end }}
livenessProbe:
  {{- include "alama-lib.probeHandler" (dict "probes" $p "path" $p.livenessPath) | nindent 2 }}
  {{- with $p.liveness }}
  {{- toYaml . | nindent 2 }}
  {{- end }}
readinessProbe:
  {{- include "alama-lib.probeHandler" (dict "probes" $p "path" ($p.readinessPath | default $p.livenessPath)) | nindent 2 }}
  {{- with $p.readiness }}
  {{- toYaml . | nindent 2 }}
  {{- end }}
{{- end }}
{{- end -}}
