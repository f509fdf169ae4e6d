{{/*
Environment. Plain settings go to the service's ConfigMap (read with envFrom, checksummed into a pod
annotation so a change rolls the pods); secrets are only ever referenced with secretKeyRef, by the
existing Secret's name and key given in values.
*/}}

{{/* The plain settings as a dict: shared infrastructure, Feast, MLflow, the bundle location and
its mode's settings (bundle.env in link mode, bundle.registry.env in registry mode), then
.Values.env. */}}
{{- define "alama-lib.configDict" -}}
{{- $g := .Values.global -}}
{{- $env := dict
  "ALAMA_KAFKA_BOOTSTRAP" (required "global.kafka.bootstrap is required" $g.kafka.bootstrap)
  "ALAMA_REDIS_URL" (required "global.redis.url is required" $g.redis.url)
  "ALAMA_ENVIRONMENT" ($g.environment | default "production")
  "HOME" "/tmp"
  "PYTHONDONTWRITEBYTECODE" "1"
-}}
{{- with $g.otlp.endpoint }}{{ $_ := set $env "ALAMA_OTLP_ENDPOINT" . }}{{ end -}}
{{- with $g.otlp.sampleRatio }}{{ $_ := set $env "ALAMA_TRACE_SAMPLE_RATIO" (toString .) }}{{ end -}}
{{- include "alama-lib.kafkaConfig" (dict "env" $env "root" $) -}}
{{- if .Values.feast.enabled -}}
{{- $f := $g.feast -}}
{{- $_ := set $env "ALAMA_FEAST_PG_HOST" $f.pgHost -}}
{{- $_ := set $env "ALAMA_FEAST_PG_PORT" $f.pgPort -}}
{{- $_ := set $env "ALAMA_FEAST_PG_DB" $f.pgDatabase -}}
{{- $_ := set $env "ALAMA_FEAST_PG_USER" $f.pgUser -}}
{{- $_ := set $env "ALAMA_FEAST_PG_SSLMODE" $f.pgSslMode -}}
{{- $_ := set $env "ALAMA_FEAST_OFFLINE_USER" ($f.offlineUser | default $f.pgUser) -}}
{{- $_ := set $env "ALAMA_FEAST_OFFLINE_SCHEMA" $f.offlineSchema -}}
{{- $_ := set $env "ALAMA_FEAST_REDIS" $f.redis -}}
{{- $_ := set $env "ALAMA_FEAST_PROJECT" $f.project -}}
{{- end -}}
{{- with include "alama-lib.mlflowTrackingUri" . -}}
{{- $_ := set $env "MLFLOW_TRACKING_URI" . -}}
{{- end -}}
{{- if .Values.bundle.enabled -}}
{{- if include "alama-lib.registryMode" . -}}
{{- $registry := .Values.bundle.registry -}}
{{- $_ := set $env (required "bundle.registry.envName is required" $registry.envName) .Values.bundle.mountPath -}}
{{- range $name, $value := $registry.env }}{{ $_ := set $env $name (tpl (toString $value) $) }}{{ end -}}
{{- else -}}
{{- $path := .Values.bundle.mountPath -}}
{{- with .Values.bundle.subPath }}{{ $path = printf "%s/%s" (trimSuffix "/" $path) . }}{{ end -}}
{{- $_ := set $env (required "bundle.envName is required" .Values.bundle.envName) $path -}}
{{- range $name, $value := .Values.bundle.env }}{{ $_ := set $env $name (tpl (toString $value) $) }}{{ end -}}
{{- end -}}
{{- end -}}
{{- range $name, $value := .Values.env -}}
{{- $_ := set $env $name (tpl (toString $value) $) -}}
{{- end -}}
{{- toYaml $env -}}
{{- end -}}

{{- define "alama-lib.configmap" -}}
apiVersion: v1
kind: ConfigMap
metadata:
  name: {{ include "alama-lib.fullname" . }}
  labels:
    {{- include "alama-lib.labels" . | nindent 4 }}
data:
  {{- range $name, $value := include "alama-lib.configDict" . | fromYaml }}
  {{ $name }}: {{ toString $value | quote }}
  {{- end }}
{{- end -}}

{{- define "alama-lib.secretKeyRef" -}}
- name: {{ .env }}
  valueFrom:
    secretKeyRef:
      name: {{ tpl (required (printf "the Secret name for %s is required" .env) .ref.name) .root }}
      key: {{ required (printf "the Secret key for %s is required" .env) .ref.key }}
{{- end -}}

{{/* env entries: every secret by reference, then raw extraEnv entries (fieldRef and the like). */}}
{{- define "alama-lib.env" -}}
{{- $secrets := .Values.global.secrets -}}
{{ include "alama-lib.secretKeyRef" (dict "env" "ALAMA_POSTGRES_DSN" "ref" $secrets.postgresDsn "root" $) }}
{{- if .Values.feast.enabled }}
{{ include "alama-lib.secretKeyRef" (dict "env" "ALAMA_FEAST_PG_PASSWORD" "ref" $secrets.feastPassword "root" $) }}
{{- end }}
{{- include "alama-lib.kafkaSecretEnv" . }}
{{- range $name, $ref := .Values.secretEnv }}
{{- if kindIs "string" $ref }}
{{- $ref = required (printf "secretEnv.%s names global.secrets.%s, which is not set" $name $ref) (index $secrets $ref) }}
{{- end }}
{{ include "alama-lib.secretKeyRef" (dict "env" $name "ref" $ref "root" $) }}
{{- end }}
{{- with .Values.extraEnv }}
{{ toYaml . }}
{{- end }}
{{- end -}}
