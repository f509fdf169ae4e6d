{{/* Every resource of one service, in apply order; a service chart's only template includes this. */}}
{{- define "alama-lib.all" -}}
{{- range $template := list "serviceaccount" "configmap" "persistentvolumeclaim" "service" "deployment" "hpa" "pdb" "networkpolicy" "servicemonitor" }}
{{- $doc := include (printf "alama-lib.%s" $template) $ | trim }}
{{- if $doc }}
---
{{ $doc }}
{{- end }}
{{- end }}
{{- end -}}
