{{/*
A writable claim for a service that keeps files of its own (the retrainer: its runs, the loan
books, MLflow's local store and the registry's outbox). Rendered when persistence.enabled and no
persistence.existingClaim is named; kept when the release is uninstalled (what was trained stays).
*/}}
{{- define "alama-lib.persistentvolumeclaim" -}}
{{- $p := .Values.persistence | default dict -}}
{{- if and $p.enabled (not $p.existingClaim) }}
apiVersion: v1
kind: PersistentVolumeClaim
metadata:
  name: {{ include "alama-lib.fullname" . }}
  labels:
    {{- include "alama-lib.labels" . | nindent 4 }}
  annotations:
    helm.sh/resource-policy: keep
    {{- with $p.annotations }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
spec:
  accessModes:
    {{- toYaml ($p.accessModes | default (list "ReadWriteOnce")) | nindent 4 }}
  {{- with $p.storageClass }}
  storageClassName: {{ . | quote }}
  {{- end }}
  resources:
    requests:
      storage: {{ required "persistence.size is required" $p.size }}
{{- end }}
{{- end -}}
