{{/*
Names, labels and small pieces shared by the resource templates.
Every template takes the service chart's root context (`.`).
*/}}

{{- define "alama-lib.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "alama-lib.selectorLabels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "alama-lib.labels" -}}
{{ include "alama-lib.selectorLabels" . }}
app.kubernetes.io/part-of: alama
app.kubernetes.io/component: {{ .Values.component | default .Chart.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- with .Values.global.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{- define "alama-lib.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- .Values.serviceAccount.name | default (include "alama-lib.fullname" .) -}}
{{- else -}}
{{- .Values.serviceAccount.name | default "default" -}}
{{- end -}}
{{- end -}}

{{/* <repository>/alama-<service>:<tag>; the tag defaults to the chart's appVersion. */}}
{{- define "alama-lib.image" -}}
{{- $repository := .Values.image.repository | default (printf "%s/%s" .Values.global.image.repository .Values.image.name) -}}
{{- $tag := .Values.image.tag | default .Values.global.image.tag | default .Chart.AppVersion -}}
{{- printf "%s:%s" $repository (toString $tag) -}}
{{- end -}}

{{/* A per-service switch that falls back to the global one: (dict "local" .Values.x "global" .Values.global.x) */}}
{{- define "alama-lib.enabled" -}}
{{- if hasKey .local "enabled" -}}
{{- if .local.enabled }}true{{ end -}}
{{- else if .global.enabled -}}
true
{{- end -}}
{{- end -}}

{{/* The container port that serves Prometheus metrics: a dedicated port or one of the service ports. */}}
{{- define "alama-lib.metricsPortName" -}}
{{- .Values.metrics.portName | default "metrics" -}}
{{- end -}}

{{/* Container ports: the service ports, then the metrics port when it is a port of its own. */}}
{{- define "alama-lib.containerPorts" -}}
{{- range .Values.service.ports }}
- name: {{ .name }}
  containerPort: {{ .targetPort | default .port }}
  protocol: {{ .protocol | default "TCP" }}
{{- end }}
{{- if .Values.metrics.port }}
- name: {{ include "alama-lib.metricsPortName" . }}
  containerPort: {{ .Values.metrics.port }}
  protocol: TCP
{{- end }}
{{- end -}}

{{/* MLflow's tracking server, for a chart with mlflow.enabled, when global.mlflow.trackingUri is set. */}}
{{- define "alama-lib.mlflowTrackingUri" -}}
{{- if (.Values.mlflow | default dict).enabled -}}
{{- (.Values.global.mlflow | default dict).trackingUri | default "" -}}
{{- end -}}
{{- end -}}

{{/*
Registry mode: the service follows MLflow's aliases and downloads the bundles it serves or explains
from the tracking server into a writable emptyDir (bundle.registry), instead of reading the
read-only bundle volume. On when the chart supports it (bundle.registry.enabled) and
global.mlflow.trackingUri is set; otherwise the link mode (bundle.volume, bundle.env) stays.
*/}}
{{- define "alama-lib.registryMode" -}}
{{- if and .Values.bundle.enabled (.Values.bundle.registry | default dict).enabled (include "alama-lib.mlflowTrackingUri" .) -}}
true
{{- end -}}
{{- end -}}

{{/* Whether the bundle volume is mounted read-only: always but in registry mode (its emptyDir) or with bundle.readOnly false (the retrainer writes bundles). */}}
{{- define "alama-lib.bundleReadOnly" -}}
{{- if not (include "alama-lib.registryMode" .) -}}
{{- if or (not (hasKey .Values.bundle "readOnly")) .Values.bundle.readOnly -}}
true
{{- end -}}
{{- end -}}
{{- end -}}
